export * from "./AgpSvg.ts"
