package relay

import (
	"github.com/socketdock/socketdock/pkg/cluster"
	"github.com/socketdock/socketdock/pkg/control"
	"github.com/socketdock/socketdock/pkg/gateway"
)

// The cluster's wiring (--cluster nats, CONTRACT §10): every hook is nil without it, so
// nothing changes.

func (r *Relay) newCluster() {
	if !r.opts.Clustered() {
		return
	}
	r.cluster = cluster.New(cluster.Options{
		URLs:           r.opts.NATSURLs(),
		Creds:          r.opts.NATSCreds,
		Prefix:         r.opts.NATSPrefix,
		Timeout:        r.opts.ClusterTimeout,
		MaxMessageSize: r.opts.MaxMessageSize,
		Name:           "socketdock " + r.PublicAddr(),
		Table:          r.Table,
		Metrics:        r.Metrics,
		Logger:         r.log,
	})
}

// clusterIDs issues ids tagged with this instance, or nil for the default.
func (r *Relay) clusterIDs() func() string {
	if r.cluster == nil {
		return nil
	}
	return r.cluster.NewID
}

func (r *Relay) controlForwarder() control.Forwarder {
	if r.cluster == nil {
		return nil
	}
	return r.cluster
}

func (r *Relay) pollForwarder() gateway.PollForwarder {
	if r.cluster == nil {
		return nil
	}
	return r.cluster
}

func (r *Relay) attachCluster() {
	if r.cluster != nil {
		r.cluster.Attach(r.control, r.gateway)
	}
}

func (r *Relay) joinCluster() error {
	if r.cluster == nil {
		return nil
	}
	return r.cluster.Start()
}

// leaveCluster stops answering for this instance's ids on NATS.
func (r *Relay) leaveCluster() {
	if r.cluster != nil {
		r.cluster.Stop()
	}
}

// Cluster is the relay's cluster membership, nil without --cluster.
func (r *Relay) Cluster() *cluster.Node { return r.cluster }
