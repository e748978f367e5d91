package config

import (
	"errors"
	"flag"
	"time"

	"github.com/socketdock/socketdock/pkg/limits"
)

// PollOptions configure the long-poll transport (CONTRACT §8).
type PollOptions struct {
	Poll               bool
	PollMaxTTL         time.Duration
	PollSessionTimeout time.Duration
	PollMaxBatchBytes  int
	PollJSONP          bool
	PollFQDN           string
}

func pollDefaults() PollOptions {
	return PollOptions{
		Poll:               true,
		PollMaxTTL:         25 * time.Second,
		PollSessionTimeout: 60 * time.Second,
		PollMaxBatchBytes:  limits.MaxBatchBytes,
		PollJSONP:          true,
	}
}

func (o *PollOptions) addFlags(fs *flag.FlagSet) {
	fs.BoolVar(&o.Poll, "poll", o.Poll, "serve the long-poll transport under /poll/ on the public port")
	fs.DurationVar(&o.PollMaxTTL, "poll-max-ttl", o.PollMaxTTL, "longest a poll is held waiting for a message (also the hold of a poll without ttl)")
	fs.DurationVar(&o.PollSessionTimeout, "poll-session-timeout", o.PollSessionTimeout, "a poll session with no poll for this long ends (disconnect code 1006)")
	fs.IntVar(&o.PollMaxBatchBytes, "poll-max-batch-bytes", o.PollMaxBatchBytes, "message bytes one poll answer carries at most (the rest waits for the next poll)")
	fs.BoolVar(&o.PollJSONP, "poll-jsonp", o.PollJSONP, "answer poll requests that carry cb as JSONP (false: such requests get 400)")
	fs.StringVar(&o.PollFQDN, "poll-fqdn", o.PollFQDN, "host[:port] poll clients are told to use in the create answer (default: the request's Host)")
}

func (o *PollOptions) check() error {
	switch {
	case o.PollMaxTTL <= 0:
		return errors.New("--poll-max-ttl must be positive")
	case o.PollSessionTimeout <= 0:
		return errors.New("--poll-session-timeout must be positive")
	case o.PollMaxBatchBytes < 1:
		return errors.New("--poll-max-batch-bytes must be at least 1")
	}
	return nil
}
