/**
 * The node's one Prometheus registry. Every subsystem registers its metrics through the
 * `Metrics` instance it receives in its components (never prom-client's global registry, so
 * several nodes can run in one process, e.g. in tests), and the API serves `text()` on /metrics.
 *
 * Naming: `rbq_<subsystem>_<what>[_<unit>]`, counters end in `_total` (Prometheus conventions).
 * Label values must come from closed sets (error codes, sources, statuses), never from peer
 * input, or a peer could grow the registry without bound.
 *
 * libp2p's own metrics: pass `metrics.registry` to `prometheusMetrics({ registry })`.
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

export const METRIC_PREFIX = 'rbq_'

export interface MetricsInit {
  /** Also export process metrics (CPU, memory, event-loop lag, GC) as `rbq_process_*` etc. Default false. */
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
    if (init.defaultMetrics === true) collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX })
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
