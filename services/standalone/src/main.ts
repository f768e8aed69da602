import { runService } from "@dexmon/platform"
import { StandaloneLive } from "./Standalone.ts"

runService("dexmon", StandaloneLive)
