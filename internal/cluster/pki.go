package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// certValidity is how long the lab's certificates are valid; a lab lives
// for minutes, but a developer may keep one up for a day.
const certValidity = 7 * 24 * time.Hour

// pki is the cluster's certificate authorities and the files made from them,
// as kubeadm lays them out: the cluster CA, the API server's serving
// certificate, the front-proxy CA with the aggregator's client certificate
// (without them the controller manager and the scheduler complain that the
// extension-apiserver-authentication ConfigMap lacks a request-header CA),
// and the service-account signing key pair. All keys are ECDSA P-256.
type pki struct {
	caCert    *x509.Certificate
	caPEM     []byte
	caFile    string // ca.crt
	caKeyFile string // ca.key
	// kube-apiserver's serving certificate and key.
	serverCert, serverKey string
	// The front-proxy CA and the client certificate the API server presents
	// to aggregated API servers.
	frontProxyCA, proxyClientCert, proxyClientKey string
	// The service-account token signing key pair.
	saKey, saPub string
}

// frontProxyClient is the common name of the API server's front-proxy
// client certificate (--requestheader-allowed-names).
const frontProxyClient = "front-proxy-client"

// newPKI makes the cluster's certificates and keys as PEM files in dir.
func newPKI(dir string) (*pki, error) {
	file := func(name string) string { return filepath.Join(dir, name) }
	p := &pki{
		caFile: file("ca.crt"), caKeyFile: file("ca.key"),
		serverCert: file("apiserver.crt"), serverKey: file("apiserver.key"),
		frontProxyCA:    file("front-proxy-ca.crt"),
		proxyClientCert: file("front-proxy-client.crt"), proxyClientKey: file("front-proxy-client.key"),
		saKey: file("sa.key"), saPub: file("sa.pub"),
	}
	ca, caKey, err := issue(p.caFile, p.caKeyFile, &x509.Certificate{Subject: pkix.Name{CommonName: "rotor-lab-ca"}}, nil, nil)
	if err != nil {
		return nil, err
	}
	p.caCert = ca
	if p.caPEM, err = os.ReadFile(p.caFile); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	// The names kubeadm puts in the API server's certificate, and the
	// addresses the node and pods reach it by.
	server := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc." + ClusterDomain},
		IPAddresses: []net.IP{net.IP(NodeIP.AsSlice()), net.IP(KubernetesServiceIP.AsSlice()), net.IPv4(127, 0, 0, 1)},
	}
	if _, _, err := issue(p.serverCert, p.serverKey, server, ca, caKey); err != nil {
		return nil, err
	}
	fpCA, fpKey, err := issue(p.frontProxyCA, file("front-proxy-ca.key"), &x509.Certificate{Subject: pkix.Name{CommonName: "front-proxy-ca"}}, nil, nil)
	if err != nil {
		return nil, err
	}
	client := &x509.Certificate{
		Subject:     pkix.Name{CommonName: frontProxyClient},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if _, _, err := issue(p.proxyClientCert, p.proxyClientKey, client, fpCA, fpKey); err != nil {
		return nil, err
	}

	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("cluster: service-account key: %w", err)
	}
	if err := writeKey(p.saKey, saKey); err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("cluster: service-account public key: %w", err)
	}
	if err := os.WriteFile(p.saPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	return p, nil
}

// issue makes a key and a certificate from tmpl, valid from an hour ago for
// certValidity, and writes both as PEM files. With parent nil the
// certificate is a self-signed CA; otherwise parent and parentKey sign it.
func issue(certFile, keyFile string, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: key for %s: %w", certFile, err)
	}
	now := time.Now()
	tmpl.SerialNumber = serial()
	tmpl.NotBefore = now.Add(-time.Hour)
	tmpl.NotAfter = now.Add(certValidity)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	if parent == nil {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		tmpl.BasicConstraintsValid = true
		tmpl.IsCA = true
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: certificate %s: %w", certFile, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: certificate %s: %w", certFile, err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, nil, fmt.Errorf("cluster: %w", err)
	}
	return cert, key, writeKey(keyFile, key)
}

// serial returns a random 128-bit certificate serial number.
func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}

// writeKey writes an EC private key as PEM, readable by root only.
func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("cluster: %s: %w", path, err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// identity is a user the API server authenticates by a static bearer token
// (--token-auth-file).
type identity struct {
	user   string
	groups []string
	token  string
}

// The static identities of the lab, with the user names Kubernetes'
// bootstrap RBAC policy already binds (system:kube-controller-manager,
// system:kube-scheduler, system:kube-proxy) or the Node authorizer knows
// (system:node:NAME in system:nodes).
// Each Node's identity is keyed "node-NAME".
func newIdentities(nodeNames []string) map[string]identity {
	ids := map[string]identity{
		"admin":                   {user: "rotor-admin", groups: []string{"system:masters"}},
		"kube-controller-manager": {user: "system:kube-controller-manager"},
		"kube-scheduler":          {user: "system:kube-scheduler"},
		"kube-proxy":              {user: "system:kube-proxy"},
	}
	for _, name := range nodeNames {
		ids["node-"+name] = identity{user: "system:node:" + name, groups: []string{"system:nodes"}}
	}
	for name, id := range ids {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		id.token = hex.EncodeToString(b)
		ids[name] = id
	}
	return ids
}

// writeTokenFile writes the identities in --token-auth-file's CSV format:
// token,user,uid,"group1,group2".
func writeTokenFile(path string, ids map[string]identity) error {
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "%s,%s,%s,\"%s\"\n", id.token, id.user, id.user, strings.Join(id.groups, ","))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// writeKubeconfig writes a kubeconfig for server with the lab's CA and a
// bearer token.
func writeKubeconfig(path, server string, caPEM []byte, user, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["lab"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["lab"] = &clientcmdapi.Context{Cluster: "lab", AuthInfo: user}
	cfg.CurrentContext = "lab"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("cluster: kubeconfig %s: %w", path, err)
	}
	return nil
}
