// A single-consumer async queue: the scheduler pushes events, the caller iterates them.

/** Push side and async-iterable side of one stream. @internal */
export class Channel<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private waiting: ((result: IteratorResult<T>) => void) | null = null;
  private closed = false;
  private failure: unknown = null;
  private onReturn: (() => void) | null = null;

  /** Called when the consumer stops iterating early (break, return, throw). */
  set onCancel(callback: () => void) {
    this.onReturn = callback;
  }

  push(item: T): void {
    if (this.closed) return;
    if (this.waiting !== null) {
      const resolve = this.waiting;
      this.waiting = null;
      resolve({ value: item, done: false });
    } else this.items.push(item);
  }

  /** Removes the buffered items (pushed, not yet taken by the consumer) that `match`, and returns how many. */
  retract(match: (item: T) => boolean): number {
    const before = this.items.length;
    const kept = this.items.filter((item) => !match(item));
    this.items.length = 0;
    this.items.push(...kept);
    return before - kept.length;
  }

  close(error: unknown = null): void {
    if (this.closed) return;
    this.closed = true;
    this.failure = error;
    if (this.waiting !== null && this.items.length === 0) {
      const resolve = this.waiting;
      this.waiting = null;
      resolve({ value: undefined as never, done: true });
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: (): Promise<IteratorResult<T>> => {
        const item = this.items.shift();
        if (item !== undefined) return Promise.resolve({ value: item, done: false });
        if (this.closed) {
          if (this.failure !== null) {
            const failure = this.failure;
            this.failure = null;
            return Promise.reject(failure);
          }
          return Promise.resolve({ value: undefined as never, done: true });
        }
        return new Promise<IteratorResult<T>>((resolve) => {
          this.waiting = resolve;
        }).then((result) => {
          if (result.done === true && this.failure !== null) {
            const failure = this.failure;
            this.failure = null;
            throw failure;
          }
          return result;
        });
      },
      return: (): Promise<IteratorResult<T>> => {
        if (!this.closed) this.onReturn?.();
        this.closed = true;
        this.items.length = 0;
        return Promise.resolve({ value: undefined as never, done: true });
      },
    };
  }
}
