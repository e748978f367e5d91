package config

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// ClusterOptions join instances over NATS (CONTRACT §10). Without --cluster nats they are
// ignored and nothing changes.
type ClusterOptions struct {
	Cluster        string        // none or nats
	NATSURL        string        // comma-separated server URLs (a NATS cluster)
	NATSCreds      string        // a .creds file (JWT and nkey seed), optional
	NATSPrefix     string        // first subject token(s) of every subject this cluster uses
	ClusterTimeout time.Duration // a call to another instance that takes longer is answered 504
}

func clusterDefaults() ClusterOptions {
	return ClusterOptions{
		Cluster:        "none",
		NATSURL:        "nats://127.0.0.1:4222",
		NATSPrefix:     "socketdock",
		ClusterTimeout: 2 * time.Second,
	}
}

func (o *ClusterOptions) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Cluster, "cluster", o.Cluster, "none, or nats: join the instances sharing --nats-url and --nats-prefix so any of them answers for any connection")
	fs.StringVar(&o.NATSURL, "nats-url", o.NATSURL, "comma-separated NATS server URLs (with --cluster nats)")
	fs.StringVar(&o.NATSCreds, "nats-creds", o.NATSCreds, "NATS credentials file (JWT and seed) for --cluster nats")
	fs.StringVar(&o.NATSPrefix, "nats-prefix", o.NATSPrefix, "subject prefix of this cluster on NATS (instances with another prefix do not see each other)")
	fs.DurationVar(&o.ClusterTimeout, "cluster-timeout", o.ClusterTimeout, "time another instance has to answer a forwarded call before it is answered 504")
}

// Clustered reports whether the instance joins a cluster.
func (o *ClusterOptions) Clustered() bool { return o.Cluster == "nats" }

// NATSURLs splits --nats-url.
func (o *ClusterOptions) NATSURLs() []string { return SplitList(o.NATSURL) }

func (o *ClusterOptions) check() error {
	switch o.Cluster {
	case "none":
		return nil
	case "nats":
	default:
		return fmt.Errorf("--cluster %q is not none or nats", o.Cluster)
	}
	urls := o.NATSURLs()
	if len(urls) == 0 {
		return errors.New("--cluster nats needs --nats-url")
	}
	for _, s := range urls {
		if err := checkNATSURL(s); err != nil {
			return fmt.Errorf("--nats-url %q: %v", s, err)
		}
	}
	if o.NATSCreds != "" {
		f, err := os.Open(o.NATSCreds)
		if err != nil {
			return fmt.Errorf("--nats-creds: %v", err)
		}
		f.Close()
	}
	if !validSubjectPrefix(o.NATSPrefix) {
		return fmt.Errorf("--nats-prefix %q must be dot-separated tokens of letters, digits, - and _", o.NATSPrefix)
	}
	if o.ClusterTimeout < 10*time.Millisecond || o.ClusterTimeout > time.Minute {
		return errors.New("--cluster-timeout must be 10ms to 1m")
	}
	return nil
}

func checkNATSURL(s string) error {
	if !strings.Contains(s, "://") {
		s = "nats://" + s // nats.go takes host:port as well
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return errors.New("scheme must be nats, tls, ws or wss")
	}
	if u.Hostname() == "" {
		return errors.New("no host")
	}
	return nil
}

// validSubjectPrefix: NATS subject tokens without wildcards, spaces or empty tokens.
func validSubjectPrefix(p string) bool {
	if p == "" || len(p) > 64 {
		return false
	}
	for _, tok := range strings.Split(p, ".") {
		if tok == "" {
			return false
		}
		for i := 0; i < len(tok); i++ {
			c := tok[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
