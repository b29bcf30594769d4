/**
 * The node's one Prometheus registry. Every subsystem registers its metrics through the
 * `Metrics` instance it receives in its components (never prom-client's global registry, so
 * several nodes can run in one process, e.g. in tests), and the API serves `text()` on /metrics.
 *
 * Naming: `rbq_<subsystem>_<what>[_<unit>]`, counters end in `_total` (Prometheus conventions).
 * Label values must come from closed sets (error codes, sources, statuses), never from peer
 * input, or a peer could grow the registry without bound.
 *
 * libp2p's own metrics: pass `metrics.registry` to `prometheusMetrics({ registry })`, wrapped in
 * `gaugesWithoutTotalSuffix` (see there).
 *
 * Process metrics (CPU, memory, file descriptors, event loop, GC) keep prom-client's standard
 * names, `process_*` and `nodejs_*`, which stock Node.js/Prometheus dashboards query; they do not
 * clash with libp2p's `nodejs_memory_*` / `nodejs_fs_*` (libp2p's own default metrics are off).
 * prom-client's `nodejs_active_{handles,requests,resources}_total` are gauges despite the suffix;
 * they keep the upstream names those dashboards use.
 */
import {
  Counter,
  Gauge,
  Histogram,
  Registry,
  collectDefaultMetrics,
  type CounterConfiguration,
  type GaugeConfiguration,
  type HistogramConfiguration,
  type Metric
} from 'prom-client'
import type { Metrics as Libp2pMetrics } from '@libp2p/interface'

export const METRIC_PREFIX = 'rbq_'

export interface MetricsInit {
  /** Also export process metrics (CPU, memory, event-loop lag, GC) as `process_*` / `nodejs_*`. Default false. */
  defaultMetrics?: boolean
  /** Labels added to every series, e.g. `{ node: 'a' }` when several nodes share a scrape. */
  labels?: Record<string, string>
}

type Config<C> = Omit<C, 'registers'>

export class Metrics {
  readonly registry: Registry

  constructor(init: MetricsInit = {}) {
    this.registry = new Registry()
    if (init.labels !== undefined) this.registry.setDefaultLabels(init.labels)
    if (init.defaultMetrics === true) collectDefaultMetrics({ register: this.registry })
  }

  counter<L extends string>(config: Config<CounterConfiguration<L>>): Counter<L> {
    return this.register(config.name, Counter, () => new Counter<L>({ ...config, registers: [this.registry] }))
  }

  gauge<L extends string>(config: Config<GaugeConfiguration<L>>): Gauge<L> {
    return this.register(config.name, Gauge, () => new Gauge<L>({ ...config, registers: [this.registry] }))
  }

  histogram<L extends string>(config: Config<HistogramConfiguration<L>>): Histogram<L> {
    return this.register(config.name, Histogram, () => new Histogram<L>({ ...config, registers: [this.registry] }))
  }

  /** Prometheus text exposition of every registered metric. */
  text(): Promise<string> {
    return this.registry.metrics()
  }

  get contentType(): string {
    return this.registry.contentType
  }

  /**
   * Registering a name twice returns the first metric (a component restarted in the same
   * process keeps counting); registering it as another type is a programming error.
   */
  private register<M extends Metric<string>>(name: string, type: abstract new (...args: never[]) => M, create: () => M): M {
    if (!name.startsWith(METRIC_PREFIX)) throw new Error(`metric "${name}" must start with "${METRIC_PREFIX}"`)
    const existing = this.registry.getSingleMetric(name)
    if (existing === undefined) return create()
    if (!(existing instanceof type)) throw new Error(`metric "${name}" is already registered with another type`)
    return existing
  }
}

/** A gauge's exported name: Prometheus reserves `_total` for counters. */
export function gaugeName(name: string): string {
  return name.endsWith('_total') ? name.slice(0, -'_total'.length) : name
}

/**
 * libp2p registers some gauges (`registerMetric`, `registerMetricGroup`) under names ending in
 * `_total` (`libp2p_tcp_inbound_connections_total` counts open connections), which Prometheus
 * tooling takes for counters. They are exported without the suffix, e.g.
 * `libp2p_tcp_inbound_connections`; libp2p's counters keep their names.
 */
export function gaugesWithoutTotalSuffix<C>(factory: (components: C) => Libp2pMetrics): (components: C) => Libp2pMetrics {
  return (components) => {
    const inner = factory(components)
    return new Proxy(inner, {
      get(target, prop) {
        if (prop === 'registerMetric') return ((name, opts) => target.registerMetric(gaugeName(name), opts)) satisfies Libp2pMetrics['registerMetric']
        if (prop === 'registerMetricGroup') return ((name, opts) => target.registerMetricGroup(gaugeName(name), opts)) satisfies Libp2pMetrics['registerMetricGroup']
        const value: unknown = Reflect.get(target, prop, target)
        return typeof value === 'function' ? value.bind(target) : value
      }
    })
  }
}
