package apptoken

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// minSecretLen is the shortest HMAC secret New accepts: a key shorter
	// than the hash output weakens the MAC (RFC 7518, section 3.2).
	minSecretLen = 32

	// maxPublicKeys bounds the signature checks one token can cost, as
	// every key matching the token's alg is tried.
	maxPublicKeys = 16

	// minRSABits is the smallest RSA modulus accepted; shorter keys are
	// considered breakable (NIST SP 800-131A).
	minRSABits = 2048
)

var (
	hmacAlgs = []string{"HS256", "HS384", "HS512"}
	rsaAlgs  = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
)

// keySet maps each accepted alg to the keys that may have signed it.
type keySet map[string][]jwt.VerificationKey

func (ks keySet) add(key jwt.VerificationKey, algs ...string) {
	for _, alg := range algs {
		ks[alg] = append(ks[alg], key)
	}
}

// parsePublicKeys decodes every PEM block in data and adds its key under
// the algs it can verify.
func (ks keySet) parsePublicKeys(data []byte) error {
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if n == 0 {
				return errors.New("PublicKeysPEM holds no PEM block")
			}
			// pem.Decode skips a block it cannot read, so leftover text
			// may be a truncated key that would otherwise vanish silently.
			if len(bytes.TrimSpace(rest)) > 0 {
				return fmt.Errorf("PublicKeysPEM: the text after block %d is not a complete PEM block", n)
			}
			return nil
		}
		n++
		if n > maxPublicKeys {
			return fmt.Errorf("PublicKeysPEM: more than %d keys", maxPublicKeys)
		}
		key, err := parseBlock(block)
		if err != nil {
			return fmt.Errorf("PublicKeysPEM block %d: %w", n, err)
		}
		algs, err := algsFor(key)
		if err != nil {
			return fmt.Errorf("PublicKeysPEM block %d: %w", n, err)
		}
		ks.add(key, algs...)
	}
}

func parseBlock(block *pem.Block) (any, error) {
	switch block.Type {
	case "PUBLIC KEY":
		key, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse public key: %w", err)
		}
		return key, nil
	case "RSA PUBLIC KEY":
		key, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse RSA public key: %w", err)
		}
		return key, nil
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		return cert.PublicKey, nil
	}
	if strings.Contains(block.Type, "PRIVATE KEY") {
		return nil, fmt.Errorf("is a %s: configure the public key, never the private one", block.Type)
	}
	return nil, fmt.Errorf("PEM type %q is not a public key or certificate", block.Type)
}

// algsFor returns the algs key verifies. An ECDSA key verifies only the alg
// of its curve (RFC 7518, section 3.4), as the library does not check.
func algsFor(key any) ([]string, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < minRSABits {
			return nil, fmt.Errorf("RSA key is %d bits, need at least %d", bits, minRSABits)
		}
		return rsaAlgs, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return []string{"ES256"}, nil
		case elliptic.P384():
			return []string{"ES384"}, nil
		case elliptic.P521():
			return []string{"ES512"}, nil
		}
		return nil, fmt.Errorf("ECDSA curve %s is not supported (use P-256, P-384 or P-521)", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return []string{"EdDSA"}, nil
	}
	return nil, fmt.Errorf("key type %T is not supported (use RSA, ECDSA or Ed25519)", key)
}
