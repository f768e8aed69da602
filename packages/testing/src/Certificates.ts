import { execFileSync } from "node:child_process"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect, Schema } from "effect"
import { tempDir } from "./TempDir.ts"

export class CertificateError extends Schema.TaggedError<CertificateError>()("CertificateError", {
  message: Schema.String
}) {}

/** A certificate and its private key, as PEM files (the key unencrypted, PKCS#8) and as text. */
export interface IssuedCertificate {
  readonly certificateFile: string
  readonly keyFile: string
  readonly certificate: string
  readonly key: string
}

/** A certificate authority of one test's own, which signs server and client certificates. */
export interface CertificateAuthority {
  /** The CA's own certificate: what a client trusts (`*_CA_FILE`). */
  readonly certificateFile: string
  readonly certificate: string
  /**
   * A certificate for `commonName` whose subject alternative names are `names` (a name that parses as
   * an IPv4 address becomes an `IP:` entry, anything else a `DNS:` one), signed by this CA, valid a day.
   */
  readonly issue: (
    commonName: string,
    names: ReadonlyArray<string>
  ) => Effect.Effect<IssuedCertificate, CertificateError>
}

const ipv4 = /^\d{1,3}(\.\d{1,3}){3}$/

/**
 * A new certificate authority made with the machine's `openssl` (`DEXMON_OPENSSL`, else `openssl`
 * on the PATH), its files in a folder removed with the scope. Each test that needs TLS makes its own,
 * so that "signed by a different CA" is a second call, and no certificate outlives its test.
 */
export const makeCertificateAuthority = Effect.fn("Certificates.makeCertificateAuthority")(function* (name: string) {
  const dir = yield* tempDir("certs")
  const openssl = process.env.DEXMON_OPENSSL ?? "openssl"
  const run = (args: ReadonlyArray<string>) =>
    Effect.try({
      try: () => {
        execFileSync(openssl, args, { stdio: ["ignore", "pipe", "pipe"] })
      },
      catch: (error) =>
        new CertificateError({
          message: `${openssl} ${args.join(" ")} failed: ${String((error as { stderr?: unknown }).stderr ?? error)}`
        })
    })
  const read = (file: string) => Effect.sync(() => readFileSync(file, "utf8"))

  const caKey = join(dir, `${name}-ca.key`)
  const caCertificate = join(dir, `${name}-ca.crt`)
  yield* run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", caKey])
  yield* run([
    "req",
    "-x509",
    "-new",
    "-key",
    caKey,
    "-sha256",
    "-days",
    "1",
    "-subj",
    `/CN=${name} test CA`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
    "-out",
    caCertificate
  ])

  let serial = 0
  const issue = Effect.fn("Certificates.issue")(function* (commonName: string, names: ReadonlyArray<string>) {
    serial += 1
    const base = join(dir, `${name}-${serial}`)
    const key = `${base}.key`
    const request = `${base}.csr`
    const certificate = `${base}.crt`
    const extensions = `${base}.ext`
    const altNames = names.map((entry) => (ipv4.test(entry) ? `IP:${entry}` : `DNS:${entry}`)).join(",")
    yield* Effect.sync(() =>
      writeFileSync(
        extensions,
        [
          "basicConstraints=CA:FALSE",
          "keyUsage=critical,digitalSignature,keyEncipherment",
          "extendedKeyUsage=serverAuth,clientAuth",
          ...(altNames === "" ? [] : [`subjectAltName=${altNames}`]),
          ""
        ].join("\n")
      )
    )
    yield* run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key])
    yield* run(["req", "-new", "-key", key, "-subj", `/CN=${commonName}`, "-out", request])
    yield* run([
      "x509",
      "-req",
      "-in",
      request,
      "-CA",
      caCertificate,
      "-CAkey",
      caKey,
      "-set_serial",
      String(1000 + serial),
      "-days",
      "1",
      "-sha256",
      "-extfile",
      extensions,
      "-out",
      certificate
    ])
    return {
      certificateFile: certificate,
      keyFile: key,
      certificate: yield* read(certificate),
      key: yield* read(key)
    } satisfies IssuedCertificate
  })

  return {
    certificateFile: caCertificate,
    certificate: yield* read(caCertificate),
    issue
  } satisfies CertificateAuthority
})
