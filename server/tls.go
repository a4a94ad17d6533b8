package server

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// WithTLSFiles serves TLS with the PEM certificate (chain) and key in
// certFile and keyFile. When clientCAFile is not empty the server requires
// mutual TLS: every client must present a certificate that the CAs in
// clientCAFile sign, or its handshake fails and nothing is served to it.
//
// The files are read again, without a restart, when they change (each new
// connection checks their modification time, size and inode, so a
// Kubernetes Secret update, which swaps a symlink, is seen at the next
// handshake). Open connections keep the certificate they were opened with;
// age rotation moves them to the new one within MaxConnectionAge. A change
// that does not load (a key that does not match, a half-written file) is
// logged once and the previous certificate stays in use until the files load
// again. New fails when the files do not load at start.
//
// The credentials apply to every connection, so peers' fair-share queries
// need them too (FairShare.DialOptions), and an in-process client such as
// the same-pod REST gateway dials with LocalClientCredentials.
func WithTLSFiles(certFile, keyFile, clientCAFile string) Option {
	return func(s *settings) {
		s.tls.files = &tlsFiles{cert: certFile, key: keyFile, clientCA: clientCAFile}
	}
}

// WithTLSConfig serves TLS with a copy of cfg, as given: to reload
// certificates, set its GetCertificate or GetConfigForClient; for mutual TLS,
// its ClientAuth and ClientCAs. grpc-go adds "h2" to NextProtos and sets
// MinVersion to TLS 1.2 when it is 0. Prefer WithTLSFiles, which reloads
// certificates by itself.
func WithTLSConfig(cfg *tls.Config) Option {
	return func(s *settings) {
		s.tls.configSet = true
		s.tls.config = nil
		if cfg != nil {
			s.tls.config = cfg.Clone()
		}
	}
}

// ServerTLS returns transport credentials that serve the certificate and key
// in certFile and keyFile, reloaded when the files change, and require client
// certificates signed by clientCAFile when it is not empty: WithTLSFiles for
// a grpc.Server of your own,
//
//	creds, err := server.ServerTLS("tls.crt", "tls.key", "")
//	s := grpc.NewServer(append(opts, grpc.Creds(creds))...)
func ServerTLS(certFile, keyFile, clientCAFile string) (credentials.TransportCredentials, error) {
	f := tlsFiles{cert: certFile, key: keyFile, clientCA: clientCAFile}
	if err := f.validate(); err != nil {
		return nil, err
	}
	r, err := newCertReloader(f, slog.Default())
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(r.serverConfig()), nil
}

// ClientTLS returns transport credentials for clients of a TLS server, for
// grpc.WithTransportCredentials or the REST gateway's
// Config.TransportCredentials. caFile holds the PEM CAs that sign the
// server's certificate; empty means the system's roots. certFile and keyFile,
// both or neither, are the client's certificate and key for a server that
// requires mutual TLS; they are read again when they change, as with
// WithTLSFiles (the CA file is read once). The server's name is checked
// against the host of the dialled target, as grpc-go does.
func ClientTLS(caFile, certFile, keyFile string) (credentials.TransportCredentials, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := loadPool(caFile)
		if err != nil {
			return nil, &ConfigError{Field: "server.ClientTLS caFile", Value: fmt.Sprintf("%q", caFile), Want: "a PEM file of CA certificates: " + err.Error()}
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, &ConfigError{Field: "server.ClientTLS", Value: fmt.Sprintf("certFile %q, keyFile %q", certFile, keyFile), Want: "both a client certificate and its key, or neither"}
	}
	if certFile != "" {
		r, err := newCertReloader(tlsFiles{cert: certFile, key: keyFile}, slog.Default())
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return r.current().cert, nil
		}
	}
	return credentials.NewTLS(cfg), nil
}

// LocalClientCredentials returns transport credentials for a client in this
// process, such as the REST gateway of the same-pod layout dialling
// localhost: plaintext when the server serves plaintext; with WithTLSFiles,
// TLS that trusts exactly the certificate this server serves (no CA, no host
// name: the gateway dials itself) and, when the server requires client
// certificates, presents that same certificate as its own. The server's
// certificate must then pass its own client check: signed by a CA of the
// client CA file and without an extended key usage that excludes client
// authentication, as when one CA issues all of a service's certificates.
// Calls through such a client carry the server's identity, not the REST
// caller's. With WithTLSConfig, dial with credentials of your own:
// LocalClientCredentials returns an error.
func (s *Server) LocalClientCredentials() (credentials.TransportCredentials, error) {
	switch {
	case s.tls == nil && !s.set.tls.configSet:
		return insecure.NewCredentials(), nil
	case s.tls == nil:
		return nil, errors.New("rotor: LocalClientCredentials: the server was given WithTLSConfig, whose certificates the kit cannot pin; dial it with credentials of your own (ClientTLS)")
	}
	r := s.tls
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification is VerifyConnection's: the server's own current
		// certificate is the one trust anchor, so neither a CA nor a host
		// name has anything to add.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !r.serves(cs.PeerCertificates[0]) {
				return errors.New("rotor: the local server presented a certificate other than its own")
			}
			return nil
		},
	}
	if r.files.clientCA != "" {
		st := r.current()
		chain := x509.NewCertPool()
		for _, der := range st.cert.Certificate[1:] {
			if c, err := x509.ParseCertificate(der); err == nil {
				chain.AddCert(c)
			}
		}
		_, err := st.cert.Leaf.Verify(x509.VerifyOptions{Roots: st.clientCAs, Intermediates: chain, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err != nil {
			return nil, fmt.Errorf("rotor: LocalClientCredentials: the server requires client certificates, and an in-process client presents the server's own, which the client CAs of %s do not accept: %w; issue the server certificate from a client CA, or dial with credentials of your own (ClientTLS)", r.files.clientCA, err)
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return r.current().cert, nil
		}
	}
	return credentials.NewTLS(cfg), nil
}

// tlsOptions are the TLS options given to New.
type tlsOptions struct {
	files     *tlsFiles
	config    *tls.Config
	configSet bool // WithTLSConfig was given, maybe with nil
}

type tlsFiles struct{ cert, key, clientCA string }

func (f tlsFiles) validate() error {
	if f.cert == "" || f.key == "" {
		return &ConfigError{Field: "server.WithTLSFiles", Value: fmt.Sprintf("certFile %q, keyFile %q", f.cert, f.key), Want: "both a certificate file and a key file (PEM); the client CA file is the optional one"}
	}
	return nil
}

// validateTLS checks the TLS options' shape; the files are read by New.
func (s settings) validateTLS(p *problems) {
	t := s.tls
	switch {
	case t.configSet && t.files != nil:
		p.add("server.WithTLSConfig", "given with WithTLSFiles", "one of WithTLSFiles and WithTLSConfig")
	case t.configSet && t.config == nil:
		p.add("server.WithTLSConfig", "nil", "a *tls.Config; leave the option out to serve plaintext")
	case t.configSet && len(t.config.Certificates) == 0 && t.config.GetCertificate == nil && t.config.GetConfigForClient == nil:
		p.add("server.WithTLSConfig", "a tls.Config without certificates", "a tls.Config with Certificates, GetCertificate or GetConfigForClient")
	case t.files != nil:
		if err := t.files.validate(); err != nil {
			*p = append(*p, err)
		}
	}
	if (t.files != nil || t.configSet) && s.fairShare != nil && len(s.fairShare.DialOptions) == 0 {
		p.add("server.FairShare.DialOptions", "none (plaintext)", "transport credentials for the peers' load queries, as the server serves TLS: grpc.WithTransportCredentials of ClientTLS, and grpc.WithAuthority with a name the pods' certificates carry")
	}
}

// setupTLS loads the TLS files, if any, and returns the server's transport
// credentials, nil for plaintext.
func (s *Server) setupTLS() (credentials.TransportCredentials, error) {
	switch {
	case s.set.tls.files != nil:
		r, err := newCertReloader(*s.set.tls.files, s.log)
		if err != nil {
			return nil, err
		}
		s.tls = r
		return credentials.NewTLS(r.serverConfig()), nil
	case s.set.tls.config != nil:
		return credentials.NewTLS(s.set.tls.config), nil
	}
	return nil, nil
}

// certReloader holds the certificate, key and client CAs loaded from files,
// and loads them again when a file changes.
type certReloader struct {
	files tlsFiles
	log   *slog.Logger

	mu     sync.Mutex
	loaded [3]os.FileInfo // of the files cur was loaded from
	failed [3]os.FileInfo // of the files that last failed to load, logged once
	cur    *certState
	prev   *certState // still valid for a handshake that began before a reload
}

type certState struct {
	cert      *tls.Certificate // with Leaf set
	clientCAs *x509.CertPool   // nil: no client certificates asked for
	server    *tls.Config
}

func newCertReloader(f tlsFiles, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{files: f, log: log}
	stamps, err := r.stat()
	if err == nil {
		r.cur, err = r.load()
	}
	if err != nil {
		return nil, &ConfigError{Field: "server.WithTLSFiles", Value: fmt.Sprintf("certFile %q, keyFile %q, clientCAFile %q", f.cert, f.key, f.clientCA), Want: "readable PEM files: " + err.Error()}
	}
	r.loaded = stamps
	r.warnExpired(r.cur)
	return r, nil
}

// serverConfig is the base config of the server credentials: every
// handshake gets the current certificate and client CAs.
func (r *certReloader) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.current().server, nil
		},
	}
}

// current returns the certificate state, loading the files again first when
// one of them changed since the last load.
func (r *certReloader) current() *certState {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamps, err := r.stat()
	if err == nil && sameFiles(stamps, r.loaded) {
		return r.cur
	}
	var st *certState
	if err == nil {
		st, err = r.load()
	}
	if err != nil {
		if !sameFiles(stamps, r.failed) {
			r.log.Warn("TLS files changed but do not load; serving the previous certificate", "cert", r.files.cert, "key", r.files.key, "client_ca", r.files.clientCA, "err", err)
		}
		r.failed = stamps
		return r.cur
	}
	r.prev, r.cur, r.loaded = r.cur, st, stamps
	r.log.Info("TLS certificate reloaded", "cert", r.files.cert, "subject", st.cert.Leaf.Subject.String(), "not_after", st.cert.Leaf.NotAfter)
	r.warnExpired(st)
	return st
}

// serves reports whether leaf is the certificate served now or just before
// the last reload.
func (r *certReloader) serves(leaf *x509.Certificate) bool {
	cur := r.current()
	r.mu.Lock()
	prev := r.prev
	r.mu.Unlock()
	for _, st := range []*certState{cur, prev} {
		if st != nil && bytes.Equal(st.cert.Leaf.Raw, leaf.Raw) {
			return true
		}
	}
	return false
}

func (r *certReloader) warnExpired(st *certState) {
	if now := time.Now(); now.After(st.cert.Leaf.NotAfter) || now.Before(st.cert.Leaf.NotBefore) {
		r.log.Warn("the TLS certificate is not valid now; clients will refuse it", "cert", r.files.cert,
			"not_before", st.cert.Leaf.NotBefore, "not_after", st.cert.Leaf.NotAfter)
	}
}

func (r *certReloader) paths() [3]string {
	return [3]string{r.files.cert, r.files.key, r.files.clientCA}
}

func (r *certReloader) stat() ([3]os.FileInfo, error) {
	var out [3]os.FileInfo
	for i, p := range r.paths() {
		if p == "" {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return out, err
		}
		out[i] = fi
	}
	return out, nil
}

// sameFiles reports whether every file is the one recorded: same inode (a
// Secret update swaps files), modification time and size.
func sameFiles(a, b [3]os.FileInfo) bool {
	for i := range a {
		switch {
		case a[i] == nil && b[i] == nil:
		case a[i] == nil || b[i] == nil:
			return false
		case !os.SameFile(a[i], b[i]) || !a[i].ModTime().Equal(b[i].ModTime()) || a[i].Size() != b[i].Size():
			return false
		}
	}
	return true
}

func (r *certReloader) load() (*certState, error) {
	cert, err := tls.LoadX509KeyPair(r.files.cert, r.files.key)
	if err != nil {
		return nil, err
	}
	// LoadX509KeyPair sets Leaf since Go 1.23.
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, err
		}
	}
	st := &certState{cert: &cert}
	st.server = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if r.files.clientCA != "" {
		if st.clientCAs, err = loadPool(r.files.clientCA); err != nil {
			return nil, fmt.Errorf("client CA file %s: %w", r.files.clientCA, err)
		}
		st.server.ClientCAs = st.clientCAs
		st.server.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return st, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("no PEM certificate in it")
	}
	return pool, nil
}
