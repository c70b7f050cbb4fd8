package proxy

// OnEventLoop is the number of the server's sessions an event loop relays.
func (s *Server) OnEventLoop() int64 { return s.onLoop.Load() }
