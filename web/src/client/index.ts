// @herald/client: a framework-free client for herald's real-time endpoints.
export * from './protocol';
export * from './backoff';
export * from './auth';
export * from './transport';
export * from './client';
export * from './renewal';
export * from './money';
