// Package bench holds benchmarks that span packages: cluster scenarios,
// simulations at scale and side-by-side comparisons. Figures are recorded in
// bench/RESULTS.md with the command that produced them.
package bench
