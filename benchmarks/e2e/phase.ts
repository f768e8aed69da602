// One phase of the end-to-end benchmark on one pipeline: the load, then the drain (until the consumers
// have committed the whole topic), then the stores checked against what was accepted, with the CPU and
// memory of every process over the whole window.
import { setTimeout as sleep } from "node:timers/promises"
import type cassandra from "cassandra-driver"
import type { Admin } from "kafkajs"
import { runLoad } from "./load.ts"
import { type Measured, measureWindow, type Usage } from "./proc.ts"
import {
  caughtUp,
  countAlerts,
  type Latencies,
  type ProbeWatch,
  type Sql,
  type Stores,
  storedOf,
  storedValues,
  watchProbes
} from "./stores.ts"
import type { Service } from "./topology.ts"
import { episodesIn, makeWorkload, type Shape, type Workload } from "./workload.ts"

export type System = "dexmon" | "raw"

export interface PhaseResult {
  readonly phase: string
  readonly system: System
  readonly offeredRate?: number
  readonly seconds: number
  readonly acceptedReadings: number
  readonly sentReadings: number
  readonly readingsPerSecond: number
  readonly requestsPerSecond: number
  readonly refused: Record<string, number>
  readonly errors: number
  readonly postP50: number
  readonly postP99: number
  readonly stored: Latencies
  readonly alert: Latencies
  /** Seconds from the end of the load until every accepted reading and alert was stored (or the drain timed out). */
  readonly drainSeconds: number
  readonly storedReadings: number
  readonly changedReadings: number
  readonly lost: number
  readonly expectedAlerts: number
  readonly alertRows: number
  readonly distinctAlerts: number
  readonly usage: Record<string, Usage>
}

export interface Pipeline {
  readonly system: System
  readonly baseUrl: string
  readonly stores: Stores
  readonly topic: string
  readonly consumerGroups: ReadonlyArray<string>
  readonly processes: ReadonlyArray<Service>
  readonly groups: ReadonlyArray<Measured>
}

export interface PhaseContext {
  readonly run: string
  readonly sql: Sql
  readonly session: cassandra.Client
  readonly kafkaAdmin: Admin
  readonly phaseSeconds: number
  readonly drainSeconds: number
}

export interface Load {
  readonly connections: number
  /** A fixed number of requests instead of `phaseSeconds`. */
  readonly amount?: number
  /** Requests per second offered (open loop); closed loop without it. */
  readonly rate?: number
  /** Before the measured load, one unmeasured in-range post per sensor (`Workload.prime`), then the drain. */
  readonly prime?: boolean
}

/** Waits until every consumer group of the pipeline has committed its whole topic, or `until` (performance.now()). */
const drain = async (context: PhaseContext, pipeline: Pipeline, until: number) => {
  while (!(await caughtUp(context.kafkaAdmin, pipeline.topic, pipeline.consumerGroups).catch(() => false))) {
    for (const service of pipeline.processes)
      if (service.exited()) throw new Error(`${service.name} exited:\n${service.tail()}`)
    if (performance.now() > until) return
    await sleep(250)
  }
}

/**
 * The stores against what was accepted: accepted keys stored, and the alerts of the low sensors against
 * what their stored readings imply (episodes for DexMon, one row per low reading for the baseline; an
 * unanswered request's readings may be stored too). Checked again each second until they match, every
 * probe was seen, or `until`.
 */
const checkStores = async (
  context: PhaseContext,
  pipeline: Pipeline,
  workload: Workload,
  watch: ProbeWatch,
  accepted: number,
  until: number
) => {
  const keys = workload.acceptedKeys()
  const low = workload.lowSensors()
  for (;;) {
    const readings = await storedOf(context.sql, pipeline.stores.readingsTable, keys)
    const values = await storedValues(
      context.sql,
      pipeline.stores.readingsTable,
      low.map((sensor) => sensor.id)
    )
    const expectedAlerts = [...values.values()].reduce(
      (sum, list) =>
        sum + (pipeline.system === "dexmon" ? episodesIn(list) : list.filter((value: number) => value <= 55).length),
      0
    )
    const alerts = await countAlerts(context.session, pipeline.stores.alertsTable, low)
    const done = readings.stored >= accepted && alerts.distinct >= expectedAlerts && watch.settled()
    if (done || performance.now() > until) return { readings, alerts, expectedAlerts }
    await sleep(1_000)
  }
}

export const runPhase = async (
  context: PhaseContext,
  pipeline: Pipeline,
  name: string,
  shape: Shape,
  sensors: number,
  load: Load
): Promise<PhaseResult> => {
  const sensorPrefix = `${context.run}-${pipeline.system}-${name}`
  // Every 20th request's newest reading is timed; every episode-opening reading of a single post, every 10th of a batch's.
  const workload = makeWorkload(sensorPrefix, sensors, shape, 20, shape.kind === "single" ? 1 : 10)
  if (load.prime === true) {
    workload.prime(true)
    const ignore = () => undefined
    await runLoad({
      baseUrl: pipeline.baseUrl,
      workload,
      connections: load.connections,
      amount: sensors,
      onProbe: ignore,
      onAlertProbe: ignore,
      onConfirmed: ignore
    })
    await drain(context, pipeline, performance.now() + context.drainSeconds * 1000)
    workload.prime(false)
  }
  const watch = watchProbes(context.sql, context.session, pipeline.stores)
  const window = measureWindow(pipeline.groups)
  const loaded = await runLoad({
    baseUrl: pipeline.baseUrl,
    workload,
    connections: load.connections,
    ...(load.amount === undefined ? { seconds: context.phaseSeconds } : { amount: load.amount }),
    ...(load.rate === undefined ? {} : { rate: load.rate }),
    onProbe: watch.reading,
    onAlertProbe: watch.alert,
    onConfirmed: watch.confirm
  })
  const loadEnded = performance.now()
  const until = loadEnded + context.drainSeconds * 1000
  await drain(context, pipeline, until)
  const { readings, alerts, expectedAlerts } = await checkStores(
    context,
    pipeline,
    workload,
    watch,
    loaded.acceptedReadings,
    until
  )
  const drainSeconds = (performance.now() - loadEnded) / 1000
  const usage = window.stop()
  await watch.stop()
  const latencies = watch.take()
  const result: PhaseResult = {
    phase: name,
    system: pipeline.system,
    ...(load.rate === undefined ? {} : { offeredRate: load.rate }),
    seconds: loaded.seconds,
    acceptedReadings: loaded.acceptedReadings,
    sentReadings: loaded.sentReadings,
    readingsPerSecond: loaded.readingsPerSecond,
    requestsPerSecond: loaded.acceptedRequests / loaded.seconds,
    refused: loaded.refused,
    errors: loaded.errors,
    postP50: loaded.postP50,
    postP99: loaded.postP99,
    stored: latencies.stored,
    alert: latencies.alert,
    drainSeconds,
    storedReadings: readings.stored,
    changedReadings: readings.changed,
    lost: Math.max(0, loaded.acceptedReadings - readings.stored),
    expectedAlerts,
    alertRows: alerts.rows,
    distinctAlerts: alerts.distinct,
    usage
  }
  console.log(
    `${name} ${pipeline.system}: ${Math.round(result.readingsPerSecond)} readings/s accepted over ${result.seconds.toFixed(1)} s ` +
      `(${result.acceptedReadings} accepted, ${JSON.stringify(result.refused)} refused, ${result.errors} errors); ` +
      `all stored ${drainSeconds.toFixed(1)} s after the load; stored ${result.storedReadings}, alerts ${alerts.distinct}/${expectedAlerts}`
  )
  return result
}
