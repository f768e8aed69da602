import { createServer } from "node:http"
import { requiredServer } from "@dexmon/ports/testing"
import { Effect } from "effect"

/** One alert of an Alertmanager notification (webhook payload version 4). */
export interface NotifiedAlert {
  readonly status: "firing" | "resolved"
  readonly labels: Readonly<Record<string, string>>
  readonly annotations: Readonly<Record<string, string>>
  readonly startsAt: string
  readonly endsAt: string
}

/** An Alertmanager notification as its webhook receiver gets it. */
export interface AlertmanagerNotification {
  readonly status: "firing" | "resolved"
  readonly receiver: string
  readonly groupLabels: Readonly<Record<string, string>>
  readonly alerts: ReadonlyArray<NotifiedAlert>
}

/**
 * The receiver the harness's Alertmanager notifies (`ALERTMANAGER_WEBHOOK_URL`, from `pnpm infra up
 * observability`): listens on that address for the scope and keeps every notification. One test at a time
 * can listen there; Alertmanager retries what it could not send meanwhile.
 */
export const makeAlertmanagerWebhook = Effect.gen(function* () {
  const url = new URL(requiredServer("ALERTMANAGER_WEBHOOK_URL"))
  const notifications: Array<AlertmanagerNotification> = []
  const server = createServer((request, response) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => {
      if (request.method === "POST" && request.url === url.pathname) {
        notifications.push(JSON.parse(Buffer.concat(chunks).toString("utf8")) as AlertmanagerNotification)
      }
      response.end()
    })
  })
  yield* Effect.acquireRelease(
    Effect.callback<void>((resume) => {
      server.once("error", (error) => resume(Effect.die(error)))
      server.listen(Number(url.port), url.hostname, () => resume(Effect.void))
    }),
    () =>
      Effect.callback<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  )
  return {
    /** Every alert notified so far, in the order they arrived. */
    alerts: (): ReadonlyArray<NotifiedAlert> => notifications.flatMap((notification) => notification.alerts),
    notifications: (): ReadonlyArray<AlertmanagerNotification> => [...notifications]
  }
})
