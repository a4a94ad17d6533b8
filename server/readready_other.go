//go:build !unix

package server

// readOnReady: see tcpFrameWriter.
const readOnReady = false
