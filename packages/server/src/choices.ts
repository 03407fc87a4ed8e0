// `n` choices of one request: the first runs at once, the others start once its prompt is in its KV cache, so the
// engine's prefix cache copies that KV to them instead of computing the prompt n times; their events are merged.
import type { Engine, GenerateEvent, GenerateRequest } from "@halo/engine";

/** One event of one choice. @internal */
export interface ChoiceEvent {
  /** The choice (`choices[index]` of the answer). */
  readonly index: number;
  readonly event: GenerateEvent;
}

/**
 * The events of `n` generations of `request`, merged in arrival order. Choice i > 0 samples with seed `seed + i` (when
 * the request has a seed), so the choices differ and each repeats with its seed. Choice 0 starts now (so a request the
 * engine refuses throws here, before any answer is written); the others start at its first token — its prompt's KV is
 * there to copy. An error of any choice ends the stream with that error once the events before it are delivered.
 * @internal
 */
export function choiceEvents(engine: Engine, n: number, request: GenerateRequest): AsyncIterable<ChoiceEvent> {
  const seed = request.seed;
  const seeded = (i: number): GenerateRequest =>
    seed === undefined || i === 0 ? request : { ...request, seed: typeof seed === "bigint" ? seed + BigInt(i) : seed + i };
  const first = engine.generate(seeded(0));
  return {
    async *[Symbol.asyncIterator](): AsyncGenerator<ChoiceEvent> {
      const queue: ChoiceEvent[] = [];
      let wake: (() => void) | null = null;
      let running = 0;
      let failure: { error: unknown } | null = null;
      const notify = (): void => {
        wake?.();
        wake = null;
      };
      let started = false;
      const consume = async (index: number, events: AsyncIterable<GenerateEvent>): Promise<void> => {
        try {
          for await (const event of events) {
            queue.push({ index, event });
            if (index === 0 && !started && (event.type === "token-delta" || event.type === "request-end")) startOthers();
            notify();
          }
        } catch (error) {
          failure ??= { error };
        } finally {
          running--;
          notify();
        }
      };
      const startOthers = (): void => {
        started = true;
        for (let i = 1; i < n; i++) {
          running++;
          try {
            void consume(i, engine.generate(seeded(i)));
          } catch (error) {
            running--;
            failure ??= { error };
          }
        }
      };
      running++;
      void consume(0, first);
      for (;;) {
        const next = queue.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        if (failure !== null) throw (failure as { error: unknown }).error;
        if (running === 0) return;
        await new Promise<void>((resolve) => (wake = resolve));
      }
    },
  };
}
