package proxy

// OnEventLoop is the number of the server's sessions an event loop relays.
func (s *Server) OnEventLoop() int64 { return s.onLoop.Load() }

// SetMaxShapeStmts bounds the shape statements a server connection keeps,
// until the returned function restores the bound.
func SetMaxShapeStmts(n int) (restore func()) {
	old := maxShapeStmts
	maxShapeStmts = n
	return func() { maxShapeStmts = old }
}
