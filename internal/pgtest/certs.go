package pgtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Certs is a throwaway certificate authority and a server certificate it
// signed for 127.0.0.1 and localhost, written as PEM files. The same server
// certificate serves PostgreSQL (Options.TLSCertFile/TLSKeyFile) and
// pgcloak's client side (ServerConfig), so one CA verifies both.
type Certs struct {
	Dir      string
	CAFile   string // the CA certificate: a client's sslrootcert
	CertFile string // the server certificate
	KeyFile  string // the server certificate's private key

	// CA holds the CA certificate, for RootCAs.
	CA *x509.CertPool

	server tls.Certificate
}

// WriteCerts creates a CA and a server certificate and writes them into
// dir as ca.crt, server.crt and server.key.
func WriteCerts(dir string) (*Certs, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "pgcloak test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}

	c := &Certs{
		Dir:      dir,
		CAFile:   filepath.Join(dir, "ca.crt"),
		CertFile: filepath.Join(dir, "server.crt"),
		KeyFile:  filepath.Join(dir, "server.key"),
		CA:       x509.NewCertPool(),
	}
	c.CA.AddCert(ca)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{c.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644},
		{c.CertFile, certPEM, 0o644},
		{c.KeyFile, keyPEM, 0o600}, // PostgreSQL refuses a key others can read
	} {
		if err := os.WriteFile(f.path, f.data, f.mode); err != nil {
			return nil, err
		}
	}
	if c.server, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return nil, err
	}
	return c, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

// ServerConfig is the TLS configuration of a server presenting the test
// certificate: what pgcloak gets as its client-side TLS (Config.ClientTLS).
func (c *Certs) ServerConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c.server}, MinVersion: tls.VersionTLS12}
}

// ClientConfig is the TLS configuration of a client that trusts only the
// test CA and verifies that the server is serverName (127.0.0.1 or
// localhost): pgcloak's upstream TLS, or a Go client's.
func (c *Certs) ClientConfig(serverName string) *tls.Config {
	return &tls.Config{RootCAs: c.CA, ServerName: serverName, MinVersion: tls.VersionTLS12}
}

// MainTLS is Main for a server with TLS on (it still accepts plaintext
// connections): it writes a test CA and server certificate into a temporary
// directory, starts the package's server with them, runs the tests, and
// removes the server and the certificates. m is the package's *testing.M.
//
//	var (
//		pg    *pgtest.Server
//		certs *pgtest.Certs
//	)
//	func TestMain(m *testing.M) { pgtest.MainTLS(m, pgtest.Options{}, &pg, &certs) }
func MainTLS(m interface{ Run() int }, opts Options, srv **Server, certs **Certs) {
	dir, err := os.MkdirTemp("", "pgcloak-certs-")
	if err == nil {
		*certs, err = WriteCerts(dir)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: cannot create test certificates: %v\n", err)
		os.Exit(1)
	}
	opts.TLSCertFile, opts.TLSKeyFile = (*certs).CertFile, (*certs).KeyFile
	s, err := Start(opts)
	if err != nil {
		os.RemoveAll(dir)
		fmt.Fprintf(os.Stderr, "FAIL: cannot start the test PostgreSQL server: %v\n", err)
		os.Exit(1)
	}
	*srv = s
	code := m.Run()
	s.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}
