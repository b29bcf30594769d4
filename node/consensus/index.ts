/**
 * Trust policy, delegation walk and verdict engine: pure logic (no network, no disk).
 * Decisions and rules: node/consensus/README.md.
 *
 * Policy (policy.ts)
 *   parsePolicy(text, source?): Policy                 TOML → Policy; RbqError POLICY_INVALID naming line/field
 *   policyFromObject(value, source?): Policy           same checks on a plain object (JSON policy in an API request)
 *   formatPolicy(policy): string                       commented TOML that parsePolicy reads back equal
 *
 * Trust graph (delegation-graph.ts) — build once per (policy, delegations, proofs, now)
 *   buildTrustGraph({ policy, delegations?, proofs?, excluded?, now, visitCap? }): TrustGraph
 *   trust.buildersFor(purl): BuilderSet                keyid → EffectiveBuilder { party, parties, chain }; cached per package name
 *   trust.explain(keyid, purl?): TrustExplanation      for `rbq trust explain KEY`
 *   trust.validUntil                                   earliest expiry in use: rebuild the graph then
 *   trust.edges / trust.diagnostics / trust.excluded
 *
 * Verdicts (verdict.ts)
 *   computeVerdict(trust, attestations, { package, artifact, sha256 }): Verdict
 *   computeVerdicts(trust, source, queries): Verdict[]                 batch; source(package, artifact) → candidates
 *   computePackageVerdict(trust, attestations, { package, artifacts }): PackageVerdict   worst-of
 *   worstOf(statuses), VERDICT_STATUSES, VERDICT_SEVERITY, normalizeQuery(query)
 *   stanceOf({ sha256, upstream, environment }, H)      supports | contradicts (why) | drift
 *   artifactNamesOf(frame)                             subject ∪ upstream names: what a statement speaks about (indexes use it)
 *   Verdict = { status, reason, evidence, evidenceHash }
 *
 * Equivocation (equivocation.ts)
 *   equivocationBetween(a, b, reporterKey?): Equivocation | undefined   with a signed proof when a key is given
 *   findEquivocations(attestations): Equivocation[]    one witness pair per key
 *   equivocatorsOf(proofs): Set<KeyId>
 *   new EquivocationDetector(reporterKey?).observe(frame)              incremental, by (keyid, seq)
 *
 * Re-evaluation (reevaluate.ts)
 *   new Reevaluator({ trust, source }).watch(query) / .unwatch(query) / .watched()
 *   reevaluator.update({ frames?, trust? }): VerdictChange[]           only affected watches recomputed
 *
 * In-memory state (consensus-state.ts) — thin wrapper for the offline CLI and tests
 *   new ConsensusState({ policy, now?, reporterKey?, visitCap? })
 *   .add(frame) / .addAll(frames): AddResult { added, duplicates, equivocations, changes }
 *   .verdict(q) / .verdicts(qs) / .packageVerdict(q) / .explain(keyid, purl?) / .watch(q) / .unwatch(q)
 *   .setPolicy(policy) / .refresh(): VerdictChange[]   .trust   .equivocators()   .detectedEquivocations()
 */
export * from './policy.js'
export * from './delegation-graph.js'
export * from './verdict.js'
export * from './equivocation.js'
export * from './reevaluate.js'
export * from './consensus-state.js'
