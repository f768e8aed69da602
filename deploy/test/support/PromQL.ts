/**
 * A small PromQL reader: which metric names, and which functions, an
 * expression uses. It is not a parser; it removes everything that can contain
 * identifiers that are not metric names, in an order where each step is safe:
 *
 * 1. string literals (label values, regexes, `label_replace` arguments);
 * 2. comments;
 * 3. `{...}` label matchers (with strings gone, they cannot hold braces);
 * 4. `[...]` range and subquery selectors (durations, Grafana's `$__rate_interval`);
 * 5. the label lists of `by`, `without`, `on`, `ignoring`, `group_left`, `group_right`;
 * 6. Grafana variables (`$var`, `${var}`).
 *
 * What is left are numbers, operators, keywords, function and aggregation
 * names (always followed by `(`), and metric names. A metric selected only as
 * `{__name__="..."}` is read from the matcher before step 1.
 */

/** PromQL keywords and literals that look like identifiers (matched case-insensitively). */
const KEYWORDS = new Set([
  "and",
  "or",
  "unless",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "offset",
  "bool",
  "atan2",
  "inf",
  "nan"
])

/** Aggregation operators and functions of PromQL (Prometheus 3), plus `start`/`end` of the `@` modifier. */
export const PROMQL_FUNCTIONS = new Set([
  // aggregation operators
  "sum",
  "min",
  "max",
  "avg",
  "group",
  "stddev",
  "stdvar",
  "count",
  "count_values",
  "bottomk",
  "topk",
  "quantile",
  "limitk",
  "limit_ratio",
  // functions
  "abs",
  "absent",
  "absent_over_time",
  "acos",
  "acosh",
  "asin",
  "asinh",
  "atan",
  "atanh",
  "avg_over_time",
  "ceil",
  "changes",
  "clamp",
  "clamp_max",
  "clamp_min",
  "cos",
  "cosh",
  "count_over_time",
  "day_of_month",
  "day_of_week",
  "day_of_year",
  "days_in_month",
  "deg",
  "delta",
  "deriv",
  "double_exponential_smoothing",
  "exp",
  "floor",
  "histogram_avg",
  "histogram_count",
  "histogram_fraction",
  "histogram_quantile",
  "histogram_stddev",
  "histogram_stdvar",
  "histogram_sum",
  "hour",
  "idelta",
  "increase",
  "info",
  "irate",
  "label_join",
  "label_replace",
  "last_over_time",
  "ln",
  "log10",
  "log2",
  "mad_over_time",
  "max_over_time",
  "min_over_time",
  "minute",
  "month",
  "pi",
  "predict_linear",
  "present_over_time",
  "quantile_over_time",
  "rad",
  "rate",
  "resets",
  "round",
  "scalar",
  "sgn",
  "sin",
  "sinh",
  "sort",
  "sort_by_label",
  "sort_by_label_desc",
  "sort_desc",
  "sqrt",
  "stddev_over_time",
  "stdvar_over_time",
  "sum_over_time",
  "tan",
  "tanh",
  "time",
  "timestamp",
  "vector",
  "year",
  "start",
  "end"
])

const STRING = /"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g
const NAME_MATCHER = /__name__\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)/g
const GROUPING = /\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)/gi
const TOKEN = /[0-9][\w.]*|[a-zA-Z_:][a-zA-Z0-9_:]*/g

export interface PromQLNames {
  /** Metric names the expression selects. */
  readonly metrics: ReadonlyArray<string>
  /** Identifiers the expression calls (functions and aggregations). */
  readonly functions: ReadonlyArray<string>
}

/** The metric names and the functions an expression uses, each once, sorted. */
export const namesIn = (expression: string): PromQLNames => {
  const metrics = new Set<string>()
  const functions = new Set<string>()

  for (const [, operator, quoted] of expression.matchAll(NAME_MATCHER)) {
    if (operator !== "=") throw new Error(`cannot check a metric selected by __name__${operator}: ${expression}`)
    metrics.add(quoted!.slice(1, -1))
  }

  const text = expression
    .replace(STRING, " ")
    .replace(/#[^\n]*/g, " ")
    .replace(/\{[^{}]*\}/g, " ")
    .replace(/\[[^[\]]*\]/g, " ")
    .replace(GROUPING, " ")
    .replace(/\$\{[^}]*\}|\$\w+/g, " ")

  for (const match of text.matchAll(TOKEN)) {
    const token = match[0]
    if (/^[0-9]/.test(token) || KEYWORDS.has(token.toLowerCase())) continue
    const after = text.slice(match.index + token.length)
    if (/^\s*\(/.test(after)) functions.add(token)
    else metrics.add(token)
  }
  return { metrics: [...metrics].sort(), functions: [...functions].sort() }
}

/** Every `expr` string anywhere in a parsed JSON or YAML value (panels, targets, rules). */
export const expressionsIn = (value: unknown): Array<string> => {
  if (Array.isArray(value)) return value.flatMap(expressionsIn)
  if (typeof value !== "object" || value === null) return []
  return Object.entries(value).flatMap(([key, inner]) =>
    key === "expr" && typeof inner === "string" ? [inner] : expressionsIn(inner)
  )
}
