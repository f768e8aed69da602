import { Result, Schema } from "effect"
import * as IpNetwork from "effect/net/IpNetwork"
import * as NetAddress from "effect/net/NetAddress"

/**
 * What an IP address is, as far as delivering to it goes: `public` (globally
 * routable unicast) or why it is not. Only `public` addresses are delivered to
 * in production, so a webhook cannot be pointed into the cluster, the node or
 * the cloud's metadata service (169.254.169.254).
 */
export type AddressClass =
  | "public"
  | "unspecified"
  | "loopback"
  | "private"
  | "shared"
  | "link-local"
  | "unique-local"
  | "multicast"
  | "broadcast"
  | "documentation"
  | "reserved"
  | "invalid"

/** A block that embeds an IPv4 address, judged by that address: a route to it reaches the IPv4 host. */
type Embedded = "mapped" | "nat64" | "6to4"

const block = <const K extends AddressClass | Embedded>(cidr: string, kind: K) => ({
  network: IpNetwork.fromStringUnsafe(cidr),
  kind
})

/**
 * The special-purpose blocks (IANA's registries, RFC 6890 and successors); an
 * address takes the kind of the first block that holds it, so narrower blocks
 * come before the wider ones that contain them.
 */
const IPV4_BLOCKS = [
  block("0.0.0.0/8", "unspecified"), // "this network"; 0.0.0.0 reaches the local host on Linux
  block("10.0.0.0/8", "private"),
  block("100.64.0.0/10", "shared"), // carrier-grade NAT (RFC 6598)
  block("127.0.0.0/8", "loopback"),
  block("169.254.0.0/16", "link-local"), // cloud metadata services live here
  block("172.16.0.0/12", "private"),
  block("192.0.0.0/24", "reserved"), // IETF protocol assignments
  block("192.0.2.0/24", "documentation"),
  block("192.88.99.0/24", "reserved"), // 6to4 relay anycast, deprecated
  block("192.168.0.0/16", "private"),
  block("198.18.0.0/15", "reserved"), // benchmarking
  block("198.51.100.0/24", "documentation"),
  block("203.0.113.0/24", "documentation"),
  block("224.0.0.0/4", "multicast"),
  block("255.255.255.255/32", "broadcast"),
  block("240.0.0.0/4", "reserved")
]

const IPV6_BLOCKS = [
  block("::/128", "unspecified"),
  block("::1/128", "loopback"),
  block("::ffff:0:0/96", "mapped"),
  block("::/96", "reserved"), // IPv4-compatible, deprecated
  block("64:ff9b::/96", "nat64"),
  block("64:ff9b:1::/48", "reserved"), // local-use NAT64
  block("100::/64", "reserved"), // discard-only
  block("2001::/32", "reserved"), // Teredo: its IPv4 part is obfuscated, and no webhook needs it
  block("2001:2::/48", "reserved"), // benchmarking
  block("2001:10::/28", "reserved"), // ORCHID
  block("2001:20::/28", "reserved"), // ORCHIDv2
  block("2001:db8::/32", "documentation"),
  block("3fff::/20", "documentation"),
  block("2002::/16", "6to4"),
  block("fc00::/7", "unique-local"),
  block("fe80::/10", "link-local"),
  block("fec0::/10", "private"), // site-local, deprecated but still private where used
  block("ff00::/8", "multicast")
]

/** Global unicast: an IPv6 address outside it is not (yet) routable on the Internet. */
const IPV6_GLOBAL_UNICAST = IpNetwork.fromStringUnsafe("2000::/3")

const embeddedIpv4 = (address: NetAddress.Ipv6Address, kind: Embedded): NetAddress.Ipv4Address => {
  const octets = NetAddress.ipv6ToOctets(address)
  // 6to4 carries it in bits 16–47 (2002:AABB:CCDD::), the others in the last 32 bits.
  const at = kind === "6to4" ? 2 : 12
  return NetAddress.ipv4FromBytesUnsafe(Uint8Array.from(octets.slice(at, at + 4)))
}

const classifyIp = (address: NetAddress.IpAddress): AddressClass => {
  if (NetAddress.isIpv4Address(address)) {
    return IPV4_BLOCKS.find(({ network }) => IpNetwork.contains(network, address))?.kind ?? "public"
  }
  const found = IPV6_BLOCKS.find(({ network }) => IpNetwork.contains(network, address))
  if (found === undefined) return IpNetwork.contains(IPV6_GLOBAL_UNICAST, address) ? "public" : "reserved"
  switch (found.kind) {
    case "mapped":
    case "nat64":
    case "6to4":
      return classifyIp(embeddedIpv4(address, found.kind))
    default:
      return found.kind
  }
}

/**
 * The class of an IP address written as DNS answers and URLs carry it
 * (`10.0.0.1`, `::ffff:10.0.0.1`, `fe80::1%eth0`, without brackets). An
 * IPv4-mapped, NAT64 or 6to4 IPv6 address is judged by the IPv4 address it
 * leads to; anything that does not parse is `invalid`.
 */
export const classifyAddress = (ip: string): AddressClass => {
  // A zone (`%eth0`) only names the interface of a link-local address; the address decides.
  const parsed = NetAddress.ipFromString(ip.split("%", 1)[0]!)
  return Result.isSuccess(parsed) ? classifyIp(parsed.success) : "invalid"
}

/** Whether a webhook may be delivered to this address in production. */
export const isPublicAddress = (ip: string): boolean => classifyAddress(ip) === "public"

/** Where delivery runs: `production` delivers over https to public addresses only. */
export type DeliveryMode = "production" | "development"

/** Why a webhook URL is refused. */
export type UrlRefusalReason = "not-a-url" | "scheme" | "userinfo" | "no-host" | "not-public"

/** A refused webhook URL: the reason, and a message that completes "url: ..." for a 400. */
export class UrlRefused extends Schema.TaggedError<UrlRefused>()("UrlRefused", {
  reason: Schema.Literals(["not-a-url", "scheme", "userinfo", "no-host", "not-public"]),
  message: Schema.String
}) {}

/** A URL that may be delivered to, as parsed, with its host without brackets and, for an IP literal, the address. */
export interface AllowedUrl {
  readonly url: URL
  readonly host: string
  readonly address: string | undefined
}

const refuse = (reason: UrlRefusalReason, message: string) => Result.fail(new UrlRefused({ reason, message }))

/**
 * The URL policy of webhook endpoints, at registration and before every
 * attempt: an absolute http(s) URL (https only in production), without user
 * name or password (they would travel in the clear in logs and the store, and
 * the signature is the credential), with a host; in production a literal IP
 * host must be public. A host name is allowed here: what it resolves to is
 * checked when it is resolved, at every attempt.
 *
 * `URL` already normalises the other spellings of an IPv4 address
 * (`0x7f.1`, `2130706433`) to dotted decimal, so they are judged as what they are.
 */
export const checkWebhookUrl = (url: string, mode: DeliveryMode): Result.Result<AllowedUrl, UrlRefused> => {
  const parsed = URL.parse(url)
  if (parsed === null) return refuse("not-a-url", "must be an absolute URL")
  const schemes = mode === "production" ? ["https:"] : ["http:", "https:"]
  if (!schemes.includes(parsed.protocol)) {
    return refuse("scheme", mode === "production" ? "must use https" : "must use http or https")
  }
  if (parsed.username !== "" || parsed.password !== "") {
    return refuse("userinfo", "must not carry a user name or password")
  }
  // http(s) URLs always have a host once parsed; kept in case the schemes allowed ever change.
  if (parsed.hostname === "") return refuse("no-host", "must name a host")
  const host = parsed.hostname.replace(/^\[(.*)\]$/, "$1")
  const address = Result.isSuccess(NetAddress.ipFromString(host)) ? host : undefined
  if (mode === "production" && address !== undefined) {
    const kind = classifyAddress(address)
    if (kind !== "public") return refuse("not-public", `its host ${address} is not a public address (${kind})`)
  }
  return Result.succeed({ url: parsed, host, address })
}
