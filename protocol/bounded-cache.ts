/** A Map bounded in size that evicts its oldest entry first (Map keeps insertion order). */
export function remember<K, V>(cache: Map<K, V>, max: number, key: K, value: V): void {
  if (cache.size >= max) {
    const oldest = cache.keys().next().value
    if (oldest !== undefined) cache.delete(oldest)
  }
  cache.set(key, value)
}
