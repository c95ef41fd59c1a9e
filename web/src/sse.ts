// Server-Sent Events over fetch(): EventSource cannot send the Authorization header.
import { apiUrl, authHeaders } from "./api";

export interface ServerEvent {
  type: string;
  data: unknown;
  id?: string;
}

/**
 * Streams `path` and calls `onEvent` for each event; reconnects with back-off until `signal`
 * aborts, calling `onReconnect` so the caller can re-synchronise what it missed.
 */
export async function streamEvents(
  path: string,
  onEvent: (event: ServerEvent) => void,
  signal: AbortSignal,
  opts: { onReconnect?: () => void; onStatus?: (live: boolean) => void } = {},
): Promise<void> {
  let lastId: string | undefined;
  let delay = 1000;
  let first = true;
  while (!signal.aborted) {
    if (!first) opts.onReconnect?.();
    first = false;
    try {
      const headers: Record<string, string> = { ...authHeaders(), Accept: "text/event-stream" };
      if (lastId) headers["Last-Event-ID"] = lastId;
      const response = await fetch(apiUrl(path), { headers, signal, cache: "no-store" });
      if (!response.ok || !response.body) {
        if (response.status === 404 || response.status === 401) return;
        throw new Error(`HTTP ${response.status}`);
      }
      opts.onStatus?.(true);
      delay = 1000;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let cut = buffer.indexOf("\n\n");
        while (cut >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const event = parseBlock(block);
          if (event) {
            if (event.id) lastId = event.id;
            onEvent(event);
          }
          cut = buffer.indexOf("\n\n");
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      void err;
    }
    if (signal.aborted) return;
    opts.onStatus?.(false);
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 15_000);
  }
}

/** Parses one SSE block (lines of `event:`, `data:`, `id:`; comments start with `:`). */
export function parseBlock(block: string): ServerEvent | null {
  let type = "message";
  let id: string | undefined;
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const key = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (key === "event") type = value;
    else if (key === "data") data.push(value);
    else if (key === "id") id = value;
  }
  if (!data.length) return null;
  const text = data.join("\n");
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  return { type, data: parsed, id };
}
