package gateway

import (
	"github.com/panjf2000/gnet/v2/pkg/logging"
	"github.com/rs/zerolog"
)

// GnetLogger routes gnet's own log lines into zerolog, for every gnet engine of the relay
// (the gateway's and the upstream's client engine).
func GnetLogger(log zerolog.Logger) logging.Logger { return gnetLogger{log} }

type gnetLogger struct{ log zerolog.Logger }

func (g gnetLogger) Debugf(format string, args ...any) { g.log.Debug().Msgf(format, args...) }
func (g gnetLogger) Infof(format string, args ...any)  { g.log.Debug().Msgf(format, args...) }
func (g gnetLogger) Warnf(format string, args ...any)  { g.log.Warn().Msgf(format, args...) }
func (g gnetLogger) Errorf(format string, args ...any) { g.log.Error().Msgf(format, args...) }
func (g gnetLogger) Fatalf(format string, args ...any) { g.log.Error().Msgf(format, args...) }
