package gateway

import "github.com/rs/zerolog"

// gnetLogger routes gnet's own log lines into zerolog.
type gnetLogger struct{ log zerolog.Logger }

func (g gnetLogger) Debugf(format string, args ...any) { g.log.Debug().Msgf(format, args...) }
func (g gnetLogger) Infof(format string, args ...any)  { g.log.Debug().Msgf(format, args...) }
func (g gnetLogger) Warnf(format string, args ...any)  { g.log.Warn().Msgf(format, args...) }
func (g gnetLogger) Errorf(format string, args ...any) { g.log.Error().Msgf(format, args...) }
func (g gnetLogger) Fatalf(format string, args ...any) { g.log.Error().Msgf(format, args...) }
