// The package ships no type declarations; this is the part of its API the broker uses.
declare module 'aedes-persistence-redis' {
  interface RedisPersistenceOptions {
    /** An ioredis connection to use instead of one made from the options. */
    conn?: unknown;
    /** Most offline messages delivered to a client on CONNECT (default 1000). */
    maxSessionDelivery?: number;
    /** Seconds an offline message is kept (default: no limit). */
    packetTTL?: (packet: unknown) => number;
  }
  interface RedisPersistence {
    setup(broker: unknown): Promise<void>;
    destroy(): Promise<void>;
  }
  function createPersistence(options?: RedisPersistenceOptions): RedisPersistence;
  export = createPersistence;
}
