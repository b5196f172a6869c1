/** Live readings of one device, routed to the chart of their metric without re-rendering the page. */
export type ReadingListener = (timeMs: number, value: unknown) => void;

export class ReadingsHub {
  private readonly listeners = new Map<string, Set<ReadingListener>>();

  on(metric: string, listener: ReadingListener): () => void {
    let set = this.listeners.get(metric);
    if (!set) {
      set = new Set();
      this.listeners.set(metric, set);
    }
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Returns whether a chart listens to this metric. */
  emit(metric: string, timeMs: number, value: unknown): boolean {
    const set = this.listeners.get(metric);
    if (!set || set.size === 0) return false;
    for (const l of set) l(timeMs, value);
    return true;
  }
}
