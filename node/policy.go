package node

import "github.com/meshnode/meshnode/radix"

// routePolicy returns the routing policy for model from the configuration
// (Config.RouteCacheThreshold and the others), radix.DefaultPolicy's
// values where a field is zero; the cost rule counts the model's pages.
func (n *Node) routePolicy(model string) radix.Policy {
	p := radix.DefaultPolicy()
	c := &n.cfg
	if c.RouteCacheThreshold > 0 {
		p.CacheThreshold = c.RouteCacheThreshold
	}
	if c.RouteBalanceAbs > 0 {
		p.BalanceAbsThreshold = c.RouteBalanceAbs
	}
	if c.RouteBalanceRel > 0 {
		p.BalanceRelThreshold = c.RouteBalanceRel
	}
	if c.RouteCostWeight > 0 {
		p.CostWeight = c.RouteCostWeight
		p.PageTokens = n.st.ix.PageTokens(model)
	}
	return p
}
