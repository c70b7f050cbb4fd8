package pgtest

import (
	"crypto/tls"
	"testing"
)

// The server certificate verifies against the test CA under both names a
// test dials, and a Go TLS client and server built from Certs agree.
func TestCerts(t *testing.T) {
	c, err := WriteCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", c.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conn.(*tls.Conn).Handshake()
			conn.Close()
		}
	}()
	for _, name := range []string{"127.0.0.1", "localhost"} {
		conn, err := tls.Dial("tcp", l.Addr().String(), c.ClientConfig(name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		conn.Close()
	}
	if conn, err := tls.Dial("tcp", l.Addr().String(), c.ClientConfig("example.com")); err == nil {
		conn.Close()
		t.Fatal("certificate accepted for a name it does not carry")
	}
	if _, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile); err != nil {
		t.Fatalf("PEM files: %v", err)
	}
}
