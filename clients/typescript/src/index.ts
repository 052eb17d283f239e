// The Hereabouts API client: openapi-fetch over the types openapi-typescript generated from
// openapi.yaml (src/schema.d.ts, checked against the spec by `npm test`).
import createClient, { type Client } from "openapi-fetch";
import type { components, operations, paths } from "./schema.js";

export type { components, operations, paths };
/** The spec's named schemas (`Schemas["User"]`, `Schemas["Problem"]`, …). */
export type Schemas = components["schemas"];

export interface ClientOptions {
  /** Where the API is served, e.g. `https://api.example.com`. */
  baseUrl: string;
  /** The current access token, asked for on every request (none: the request goes without). */
  token?: () => string | undefined;
  /** A fetch of your own (tests, proxies); the global one otherwise. */
  fetch?: typeof globalThis.fetch;
}

/** A typed client: `client.GET("/v1/nearby", { params: { query: { radius_m: 1000 } } })`. */
export function createHereaboutsClient(options: ClientOptions): Client<paths> {
  const client = createClient<paths>({ baseUrl: options.baseUrl, fetch: options.fetch });
  client.use({
    onRequest({ request }) {
      const token = options.token?.();
      if (token) request.headers.set("Authorization", `Bearer ${token}`);
      return request;
    },
  });
  return client;
}

/** One server-sent event of the live radar (`snapshot`, `enter`, `move`, `leave`, `end`). */
export interface RadarEvent {
  event: string;
  id?: string;
  data: string;
}

/** Reads server-sent events (the WHATWG event-stream format) from a response body. */
export async function* readEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<RadarEvent> {
  const decoder = new TextDecoder();
  let buffer = "";
  let current: RadarEvent = { event: "message", data: "" };
  let hasData = false;
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
      if (line === "") {
        if (hasData) yield current;
        current = { event: "message", data: "" };
        hasData = false;
        continue;
      }
      if (line.startsWith(":")) continue; // a keep-alive comment
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") current.event = value;
      else if (field === "id") current.id = value;
      else if (field === "data") {
        current.data = hasData ? `${current.data}\n${value}` : value;
        hasData = true;
      }
    }
  }
}
