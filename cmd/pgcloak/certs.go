package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// certReloader is the certificate pgcloak offers clients, read again when
// its files change (cert-manager renews them in place, or a Kubernetes
// Secret volume swaps a symlink) and on reload. New handshakes get the
// certificate in force (tls.Config.GetCertificate); sessions already
// established keep theirs. A file that does not load leaves the old
// certificate in force, with an error in the log and in the metrics.
type certReloader struct {
	log  *slog.Logger
	cert atomic.Pointer[tls.Certificate]

	mu                sync.Mutex
	certFile, keyFile string
	sum               [32]byte // of the files in force

	reloads  *prometheus.CounterVec
	notAfter prometheus.Gauge
}

func newCertReloader(certFile, keyFile string, log *slog.Logger, reg prometheus.Registerer) (*certReloader, error) {
	c := &certReloader{log: log, certFile: certFile, keyFile: keyFile,
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "tls",
			Name: "certificate_reloads_total",
			Help: "Reads of the client-side certificate after a change of its files or a reload; a failure leaves the old certificate in force."},
			[]string{"result"}),
		notAfter: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "tls",
			Name: "certificate_expiry_timestamp_seconds", Help: "When the client-side certificate in force expires."}),
	}
	c.reloads.WithLabelValues("success")
	c.reloads.WithLabelValues("failure")
	if _, err := c.load(true); err != nil {
		return nil, err
	}
	if reg != nil {
		reg.MustRegister(c.reloads, c.notAfter)
	}
	return c, nil
}

// tlsConfig is the client-side TLS of the proxy.
func (c *certReloader) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cert.Load(), nil }}
}

// setFiles changes the files (a reloaded config naming others) and reads
// them; files that do not load leave the old ones in force.
func (c *certReloader) setFiles(certFile, keyFile string) error {
	c.mu.Lock()
	oldCert, oldKey := c.certFile, c.keyFile
	c.certFile, c.keyFile = certFile, keyFile
	c.mu.Unlock()
	if _, err := c.load(true); err != nil {
		c.mu.Lock()
		c.certFile, c.keyFile = oldCert, oldKey
		c.mu.Unlock()
		c.failed(err)
		return err
	}
	return nil
}

// reload reads the files again (an explicit reload: SIGHUP, the admin API,
// a changed config) and reports whether the certificate changed.
func (c *certReloader) reload() (bool, error) {
	changed, err := c.load(false)
	if err != nil {
		c.failed(err)
	}
	return changed, err
}

// load reads the files and puts the certificate in force when they
// changed since the last read (always, with force).
func (c *certReloader) load(force bool) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	certPEM, keyPEM, sum, err := c.read()
	if err != nil {
		return false, err
	}
	if !force && sum == c.sum {
		return false, nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, fmt.Errorf("%s, %s: %w", c.certFile, c.keyFile, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return false, fmt.Errorf("%s: %w", c.certFile, err)
	}
	cert.Leaf = leaf
	if time.Now().After(leaf.NotAfter) {
		return false, fmt.Errorf("%s: the certificate expired at %s", c.certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	old := c.cert.Swap(&cert)
	c.sum = sum
	c.notAfter.Set(float64(leaf.NotAfter.Unix()))
	c.reloads.WithLabelValues("success").Inc()
	if old != nil {
		c.log.Info("client TLS certificate reloaded; new connections get it", "file", c.certFile,
			"serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return true, nil
}

func (c *certReloader) read() (certPEM, keyPEM []byte, sum [32]byte, err error) {
	if certPEM, err = os.ReadFile(c.certFile); err != nil {
		return
	}
	if keyPEM, err = os.ReadFile(c.keyFile); err != nil {
		return
	}
	sum = sha256.Sum256(bytes.Join([][]byte{certPEM, keyPEM}, []byte{0}))
	return
}

func (c *certReloader) failed(err error) {
	c.reloads.WithLabelValues("failure").Inc()
	c.log.Error("client TLS certificate not reloaded; the old one stays in force", "err", err)
}

// watch reads the files every interval until ctx is done. Files that do
// not load count as a failure once they stay so for a tick (a renewal that
// writes the certificate and the key one after the other is seen half
// done), and are reported once.
func (c *certReloader) watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var pending, reported [32]byte
	var havePending, haveReported bool
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, err := c.load(false)
		if err == nil {
			havePending, haveReported = false, false
			continue
		}
		c.mu.Lock()
		_, _, sum, _ := c.read() // zero when unreadable
		c.mu.Unlock()
		switch {
		case haveReported && sum == reported:
		case !havePending || sum != pending:
			pending, havePending = sum, true
		default:
			c.failed(err)
			reported, haveReported = sum, true
		}
	}
}
