package session

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxBuyerTokenLife is how far ahead a buyer token's exp may be: a leaked token stays useful a day at most.
const MaxBuyerTokenLife = 24 * time.Hour

// BuyerClaims is what a verified buyer token says about the buyer.
type BuyerClaims struct {
	Subject   string    `json:"sub"`
	Name      string    `json:"name,omitempty"`
	Tier      string    `json:"tier,omitempty"`
	Tags      []string  `json:"tags,omitempty"`
	Anonymous bool      `json:"anon,omitempty"`
	Shop      int64     `json:"shop,omitempty"`
	Expires   time.Time `json:"-"`
}

type buyerJWT struct {
	Name string   `json:"name,omitempty"`
	Tier string   `json:"tier,omitempty"`
	Tags []string `json:"tags,omitempty"`
	Anon bool     `json:"anon,omitempty"`
	Shop int64    `json:"shop,omitempty"`
	jwt.RegisteredClaims
}

// VerifyBuyerToken checks an HS256 token signed by the shop's backend with one of its secrets (two may
// be valid at once, for rotation), or an anonymous visitor token signed with the server's visitorKey
// for this shop. exp is required and may be at most MaxBuyerTokenLife ahead.
func VerifyBuyerToken(token string, shopID int64, shopSecrets []string, visitorKey []byte, now time.Time) (BuyerClaims, error) {
	if token == "" {
		return BuyerClaims{}, Errorf(EFORBIDDEN, "buyer token missing")
	}
	var lastErr error
	keys := make([][]byte, 0, len(shopSecrets)+1)
	for _, s := range shopSecrets {
		if s != "" {
			keys = append(keys, []byte(s))
		}
	}
	if len(visitorKey) > 0 {
		keys = append(keys, visitorKey)
	}
	for i, key := range keys {
		var c buyerJWT
		_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return key, nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithTimeFunc(func() time.Time { return now }))
		if err != nil {
			lastErr = err
			if strings.Contains(err.Error(), "signature is invalid") {
				continue
			}
			return BuyerClaims{}, &Error{Code: EFORBIDDEN, Message: "buyer token rejected", Err: err}
		}
		visitor := i == len(keys)-1 && len(visitorKey) > 0
		if visitor && (!c.Anon || c.Shop != shopID) {
			return BuyerClaims{}, Errorf(EFORBIDDEN, "visitor token is for another shop")
		}
		if !visitor && c.Anon {
			return BuyerClaims{}, Errorf(EFORBIDDEN, "shop tokens cannot claim to be anonymous")
		}
		if c.Subject == "" || len(c.Subject) > 128 {
			return BuyerClaims{}, Errorf(EFORBIDDEN, "buyer token needs a sub of 1-128 characters")
		}
		exp := c.ExpiresAt.Time
		if exp.After(now.Add(MaxBuyerTokenLife + time.Minute)) {
			return BuyerClaims{}, Errorf(EFORBIDDEN, "buyer token exp is more than 24h ahead")
		}
		return BuyerClaims{Subject: c.Subject, Name: c.Name, Tier: c.Tier, Tags: c.Tags, Anonymous: c.Anon, Shop: c.Shop, Expires: exp}, nil
	}
	return BuyerClaims{}, &Error{Code: EFORBIDDEN, Message: "buyer token signature is invalid", Err: lastErr}
}

// SignBuyerToken signs claims with key, as a shop's backend would; tests, the demo and bench use it.
func SignBuyerToken(key []byte, c BuyerClaims, now time.Time) (string, error) {
	exp := c.Expires
	if exp.IsZero() {
		exp = now.Add(MaxBuyerTokenLife - time.Minute)
	}
	claims := buyerJWT{Name: c.Name, Tier: c.Tier, Tags: c.Tags, Anon: c.Anonymous, Shop: c.Shop,
		RegisteredClaims: jwt.RegisteredClaims{Subject: c.Subject, ExpiresAt: jwt.NewNumericDate(exp), IssuedAt: jwt.NewNumericDate(now)}}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
}

// NewVisitorToken returns a token for an anonymous visitor of shop, signed with the server's key.
func NewVisitorToken(visitorKey []byte, shopID int64, now time.Time) (string, BuyerClaims, error) {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	c := BuyerClaims{Subject: "v_" + hex.EncodeToString(b), Anonymous: true, Shop: shopID, Expires: now.Add(MaxBuyerTokenLife - time.Minute)}
	tok, err := SignBuyerToken(visitorKey, c, now)
	return tok, c, err
}
