// Package modcheck holds the test that keeps the root module lean: a
// program that imports rotor's server, gateway and interceptors must not
// inherit the lab's Kubernetes, etcd or CoreDNS modules.
package modcheck
