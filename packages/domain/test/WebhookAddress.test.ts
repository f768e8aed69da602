import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import {
  type AddressClass,
  checkWebhookUrl,
  classifyAddress,
  type DeliveryMode,
  isPublicAddress,
  type UrlRefusalReason
} from "../src/WebhookAddress.ts"

/** Every IPv4 range at its edges: the last address before it, its first and last, the first after it. */
const ipv4: ReadonlyArray<readonly [string, AddressClass]> = [
  ["0.0.0.0", "unspecified"],
  ["0.255.255.255", "unspecified"],
  ["1.0.0.0", "public"],
  ["9.255.255.255", "public"],
  ["10.0.0.0", "private"],
  ["10.255.255.255", "private"],
  ["11.0.0.0", "public"],
  ["100.63.255.255", "public"],
  ["100.64.0.0", "shared"],
  ["100.127.255.255", "shared"],
  ["100.128.0.0", "public"],
  ["126.255.255.255", "public"],
  ["127.0.0.0", "loopback"],
  ["127.0.0.1", "loopback"],
  ["127.255.255.255", "loopback"],
  ["128.0.0.0", "public"],
  ["169.253.255.255", "public"],
  ["169.254.0.0", "link-local"],
  ["169.254.169.254", "link-local"],
  ["169.254.255.255", "link-local"],
  ["169.255.0.0", "public"],
  ["172.15.255.255", "public"],
  ["172.16.0.0", "private"],
  ["172.31.255.255", "private"],
  ["172.32.0.0", "public"],
  ["191.255.255.255", "public"],
  ["192.0.0.0", "reserved"],
  ["192.0.0.255", "reserved"],
  ["192.0.1.0", "public"],
  ["192.0.2.0", "documentation"],
  ["192.0.2.255", "documentation"],
  ["192.0.3.0", "public"],
  ["192.88.99.0", "reserved"],
  ["192.167.255.255", "public"],
  ["192.168.0.0", "private"],
  ["192.168.255.255", "private"],
  ["192.169.0.0", "public"],
  ["198.17.255.255", "public"],
  ["198.18.0.0", "reserved"],
  ["198.19.255.255", "reserved"],
  ["198.20.0.0", "public"],
  ["198.51.100.0", "documentation"],
  ["198.51.100.255", "documentation"],
  ["203.0.113.0", "documentation"],
  ["203.0.113.255", "documentation"],
  ["8.8.8.8", "public"],
  ["223.255.255.255", "public"],
  ["224.0.0.0", "multicast"],
  ["239.255.255.255", "multicast"],
  ["240.0.0.0", "reserved"],
  ["255.255.255.254", "reserved"],
  ["255.255.255.255", "broadcast"]
]

const ipv6: ReadonlyArray<readonly [string, AddressClass]> = [
  ["::", "unspecified"],
  ["::1", "loopback"],
  ["::2", "reserved"],
  // IPv4-mapped: judged by the IPv4 address, in either spelling.
  ["::ffff:10.0.0.1", "private"],
  ["::ffff:a00:1", "private"],
  ["::ffff:127.0.0.1", "loopback"],
  ["::ffff:169.254.169.254", "link-local"],
  ["::ffff:0.0.0.0", "unspecified"],
  ["::ffff:8.8.8.8", "public"],
  ["::fffe:ffff:ffff", "reserved"],
  // NAT64 and 6to4 lead to the IPv4 address they carry.
  ["64:ff9b::10.0.0.1", "private"],
  ["64:ff9b::8.8.8.8", "public"],
  ["64:ff9b:1::1", "reserved"],
  ["2002:a00:1::", "private"],
  ["2002:7f00:1::1", "loopback"],
  ["2002:808:808::", "public"],
  ["2001::1", "reserved"],
  ["2001:db8::1", "documentation"],
  ["2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "documentation"],
  ["2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", "public"],
  ["2001:db9::", "public"],
  ["2606:4700:4700::1111", "public"],
  ["1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "reserved"],
  ["2000::", "public"],
  ["3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "public"],
  ["3fff::", "documentation"],
  ["3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", "documentation"],
  ["4000::", "reserved"],
  ["fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "reserved"],
  ["fc00::", "unique-local"],
  ["fd12:3456:789a::1", "unique-local"],
  ["fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "unique-local"],
  ["fe00::", "reserved"],
  ["fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "reserved"],
  ["fe80::", "link-local"],
  ["fe80::1%eth0", "link-local"],
  ["febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "link-local"],
  ["fec0::", "private"],
  ["feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "private"],
  ["ff00::", "multicast"],
  ["ff02::1", "multicast"],
  ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "multicast"]
]

const invalid: ReadonlyArray<readonly [string, AddressClass]> = [
  ["", "invalid"],
  ["example.com", "invalid"],
  ["256.0.0.1", "invalid"],
  ["010.0.0.1", "invalid"],
  ["1.2.3", "invalid"],
  ["[::1]", "invalid"],
  ["::g", "invalid"]
]

describe("classifyAddress", () => {
  it.each([...ipv4, ...ipv6, ...invalid])("%s is %s", (address, expected) => {
    assert.strictEqual(classifyAddress(address), expected)
    assert.strictEqual(isPublicAddress(address), expected === "public")
  })
})

type Expected = "ok" | UrlRefusalReason

/** Each URL in both modes: what production and development say. */
const urls: ReadonlyArray<readonly [string, production: Expected, development: Expected]> = [
  ["https://hooks.example.com/dexmon", "ok", "ok"],
  ["https://hooks.example.com:8443/a?b=c#d", "ok", "ok"],
  ["http://hooks.example.com/dexmon", "scheme", "ok"],
  ["ftp://hooks.example.com/", "scheme", "scheme"],
  ["file:///etc/passwd", "scheme", "scheme"],
  ["mailto:ops@example.com", "scheme", "scheme"],
  ["javascript:alert(1)", "scheme", "scheme"],
  ["not a url", "not-a-url", "not-a-url"],
  ["/relative/path", "not-a-url", "not-a-url"],
  ["https://", "not-a-url", "not-a-url"],
  ["", "not-a-url", "not-a-url"],
  ["https://user:secret@hooks.example.com/", "userinfo", "userinfo"],
  ["https://user@hooks.example.com/", "userinfo", "userinfo"],
  ["https://:secret@hooks.example.com/", "userinfo", "userinfo"],
  ["https://8.8.8.8/hook", "ok", "ok"],
  ["https://[2606:4700:4700::1111]/hook", "ok", "ok"],
  ["https://10.0.0.1/hook", "not-public", "ok"],
  ["https://127.0.0.1:8443/hook", "not-public", "ok"],
  ["https://169.254.169.254/latest/meta-data", "not-public", "ok"],
  ["https://100.64.0.1/", "not-public", "ok"],
  ["https://0.0.0.0/", "not-public", "ok"],
  ["https://255.255.255.255/", "not-public", "ok"],
  ["https://224.0.0.1/", "not-public", "ok"],
  ["https://[::1]/", "not-public", "ok"],
  ["https://[::ffff:10.0.0.1]/", "not-public", "ok"],
  ["https://[fe80::1]/", "not-public", "ok"],
  ["https://[fd00::1]/", "not-public", "ok"],
  // Other spellings of 127.0.0.1, which URL normalises before they are judged.
  ["https://0x7f000001/", "not-public", "ok"],
  ["https://2130706433/", "not-public", "ok"],
  ["https://0177.0.0.1/", "not-public", "ok"],
  ["https://127.1/", "not-public", "ok"],
  // A name is judged by what it resolves to, at every attempt, not here.
  ["https://localhost/", "ok", "ok"],
  ["http://localhost:8080/", "scheme", "ok"]
]

describe("checkWebhookUrl", () => {
  const cases = urls.flatMap(([url, production, development]) => [
    { url, mode: "production" as DeliveryMode, expected: production },
    { url, mode: "development" as DeliveryMode, expected: development }
  ])

  it.each(cases)("$url in $mode: $expected", ({ url, mode, expected }) => {
    const result = checkWebhookUrl(url, mode)
    assert.strictEqual(Result.isSuccess(result) ? "ok" : result.failure.reason, expected)
  })

  it("gives the host without brackets and the literal address, for the sender to pin", () => {
    const literal = checkWebhookUrl("https://[2606:4700:4700::1111]:8443/hook", "production")
    assert.isTrue(Result.isSuccess(literal))
    if (Result.isSuccess(literal)) {
      assert.strictEqual(literal.success.host, "2606:4700:4700::1111")
      assert.strictEqual(literal.success.address, "2606:4700:4700::1111")
    }
    const named = checkWebhookUrl("https://hooks.example.com/x", "production")
    assert.isTrue(Result.isSuccess(named) && named.success.address === undefined)
  })

  it.each([
    ["not a url", "production", "must be an absolute URL"],
    ["http://hooks.example.com/", "production", "must use https"],
    ["ftp://hooks.example.com/", "development", "must use http or https"],
    ["https://a:b@hooks.example.com/", "production", "must not carry a user name or password"],
    ["https://10.1.2.3/", "production", "its host 10.1.2.3 is not a public address (private)"]
  ] as const)("%s in %s says: %s", (url, mode, message) => {
    const result = checkWebhookUrl(url, mode)
    assert.isTrue(Result.isFailure(result))
    if (Result.isFailure(result)) assert.strictEqual(result.failure.message, message)
  })
})
