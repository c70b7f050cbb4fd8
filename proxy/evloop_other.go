//go:build !linux

package proxy

// loopSession stands for the event-loop relay, which exists on Linux only
// (evloop_linux.go); elsewhere every session has the goroutine relay.
type loopSession struct{}

func (*loopSession) requestEject() {}

func (s *session) relayOnLoop() (up, down []byte, ok bool) { return nil, nil, true }
