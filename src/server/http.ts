// The HTTP front's entry for main.ts and the tests: the fetch handler, its types and its limits (the parts are router.ts, routes/, request.ts, response.ts).

export type { Handler, ServerHooks, ServerState } from "./context.ts";
export { batchBodyBytesMax, kvBodyBytesMax, listBytesMax, listLimitDefault, listLimitMax } from "./request.ts";
export { createHandler } from "./router.ts";
