package app

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/shopdesk/shopdesk/agent"
	"github.com/shopdesk/shopdesk/session"
)

const (
	cookieName      = "shopdesk_session"
	staffTokenLife  = 12 * time.Hour
	staffTokenPrefx = "st1."
)

// identity is who made a request, once authenticated.
type identity struct {
	caller    session.Caller
	shop      *agent.Shop
	staff     *agent.Staff
	buyer     *agent.Buyer
	viaCookie bool
}

// auth authenticates staff (signed token in a cookie or a bearer header), buyers (the shop's JWT or our
// visitor token, with the shop named in X-Shop or ?shop=) and the operator.
type auth struct {
	key           []byte // server key: signs staff tokens and visitor tokens; shared by the cluster
	operatorToken string
	agents        *agent.Service
	now           func() time.Time

	mu     sync.Mutex
	shops  map[int64]cachedShop
	buyers map[string]cachedBuyer
}

type cachedShop struct {
	shop *agent.Shop
	at   time.Time
}

type cachedBuyer struct {
	buyer *agent.Buyer
	exp   time.Time
}

// staffToken signs "staffID.shopID.exp".
func (a *auth) staffToken(st *agent.Staff) string {
	exp := a.now().Add(staffTokenLife).Unix()
	payload := fmt.Sprintf("%d.%d.%d", st.ID, st.ShopID, exp)
	return staffTokenPrefx + payload + "." + a.sign(payload)
}

func (a *auth) sign(payload string) string {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// parseStaffToken returns the staff and shop ids of a valid, unexpired token.
func (a *auth) parseStaffToken(tok string) (staffID, shopID int64, err error) {
	bad := errorf(codeUnauth, "invalid or expired session; log in again")
	if !strings.HasPrefix(tok, staffTokenPrefx) {
		return 0, 0, bad
	}
	parts := strings.Split(strings.TrimPrefix(tok, staffTokenPrefx), ".")
	if len(parts) != 4 {
		return 0, 0, bad
	}
	payload := strings.Join(parts[:3], ".")
	if subtle.ConstantTimeCompare([]byte(a.sign(payload)), []byte(parts[3])) != 1 {
		return 0, 0, bad
	}
	staffID, e1 := strconv.ParseInt(parts[0], 10, 64)
	shopID, e2 := strconv.ParseInt(parts[1], 10, 64)
	exp, e3 := strconv.ParseInt(parts[2], 10, 64)
	if e1 != nil || e2 != nil || e3 != nil || a.now().Unix() > exp {
		return 0, 0, bad
	}
	return staffID, shopID, nil
}

// shop returns a shop, cached for a few seconds: secrets and origins change rarely and every node
// sees a change within that time.
func (a *auth) shop(ctx context.Context, id int64) (*agent.Shop, error) {
	now := a.now()
	a.mu.Lock()
	c, ok := a.shops[id]
	a.mu.Unlock()
	if ok && now.Sub(c.at) < 5*time.Second {
		return c.shop, nil
	}
	shop, err := a.agents.Store.Shop(ctx, id)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	if a.shops == nil || len(a.shops) > 10000 {
		a.shops = map[int64]cachedShop{}
	}
	a.shops[id] = cachedShop{shop: shop, at: now}
	a.mu.Unlock()
	return shop, nil
}

// forgetShop drops a cached shop after a change made on this node.
func (a *auth) forgetShop(id int64) {
	a.mu.Lock()
	delete(a.shops, id)
	a.mu.Unlock()
}

// shopRef resolves a shop given by id or slug.
func (a *auth) shopRef(ctx context.Context, ref string) (*agent.Shop, error) {
	if ref == "" {
		return nil, errorf(codeInvalid, "shop is required (X-Shop header or ?shop=)")
	}
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
		return a.shop(ctx, id)
	}
	shop, err := a.agents.Store.ShopBySlug(ctx, ref)
	if err != nil {
		return nil, err
	}
	return a.shop(ctx, shop.ID)
}

// staff authenticates a staff token and loads the staff member, who must still be active.
func (a *auth) staffIdentity(ctx context.Context, tok string) (*identity, error) {
	staffID, shopID, err := a.parseStaffToken(tok)
	if err != nil {
		return nil, err
	}
	st, err := a.agents.Store.Staff(ctx, shopID, staffID)
	if session.ErrorCode(err) == codeNotFound || (err == nil && !st.Active) {
		return nil, errorf(codeUnauth, "account is gone or deactivated")
	}
	if err != nil {
		return nil, err
	}
	shop, err := a.shop(ctx, shopID)
	if err != nil {
		return nil, err
	}
	return &identity{shop: shop, staff: st, caller: session.Caller{Party: session.StaffParty(st.ID), ShopID: shopID,
		Manager: st.Role == agent.RoleManager}}, nil
}

// buyerIdentity verifies a buyer token for shop and returns the buyer, creating them on first sight.
func (a *auth) buyerIdentity(ctx context.Context, shop *agent.Shop, tok string) (*identity, error) {
	cacheKey := strconv.FormatInt(shop.ID, 10) + "|" + tok
	now := a.now()
	a.mu.Lock()
	cb, ok := a.buyers[cacheKey]
	a.mu.Unlock()
	if !ok || now.After(cb.exp) {
		claims, err := session.VerifyBuyerToken(tok, shop.ID, shop.BuyerSecrets, a.visitorKey(), now)
		if err != nil {
			return nil, err
		}
		b := &agent.Buyer{ShopID: shop.ID, ExternalID: claims.Subject, Name: claims.Name, Tier: claims.Tier, Tags: claims.Tags, Anonymous: claims.Anonymous}
		if b.Name == "" {
			b.Name = claims.Subject
		}
		if err := a.agents.Store.UpsertBuyer(ctx, b); err != nil {
			return nil, err
		}
		// Trusted for a few minutes at most, so that a rotated-out secret or a changed tier takes
		// effect soon even for a token that is still valid.
		exp := claims.Expires
		if limit := now.Add(5 * time.Minute); exp.After(limit) {
			exp = limit
		}
		cb = cachedBuyer{buyer: b, exp: exp}
		a.mu.Lock()
		if a.buyers == nil || len(a.buyers) > 100000 {
			a.buyers = map[string]cachedBuyer{}
		}
		a.buyers[cacheKey] = cb
		a.mu.Unlock()
	}
	return &identity{shop: shop, buyer: cb.buyer, caller: session.Caller{Party: session.BuyerParty(cb.buyer.ID), ShopID: shop.ID}}, nil
}

// visitorKey is derived from the server key so that the two are never the same bytes.
func (a *auth) visitorKey() []byte {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte("visitor-tokens"))
	return m.Sum(nil)
}

// operator reports whether the request carries the operator token.
func (a *auth) operator(r *http.Request) bool {
	tok := bearer(r)
	return tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(a.operatorToken)) == 1
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// identify authenticates a request: bearer staff token, staff cookie, or buyer token with a shop.
func (a *auth) identify(r *http.Request) (*identity, error) {
	ctx := r.Context()
	tok := bearer(r)
	if tok == "" {
		tok = r.URL.Query().Get("token")
	}
	if strings.HasPrefix(tok, staffTokenPrefx) {
		return a.staffIdentity(ctx, tok)
	}
	if tok != "" {
		shopRef := r.Header.Get("X-Shop")
		if shopRef == "" {
			shopRef = r.URL.Query().Get("shop")
		}
		shop, err := a.shopRef(ctx, shopRef)
		if err != nil {
			if session.ErrorCode(err) == codeNotFound {
				return nil, errorf(codeUnauth, "unknown shop")
			}
			return nil, err
		}
		id, err := a.buyerIdentity(ctx, shop, tok)
		if err != nil {
			if errorCode(err) == codeForbidden {
				return nil, errorf(codeUnauth, errorMessage(err))
			}
			return nil, err
		}
		return id, nil
	}
	if ck, err := r.Cookie(cookieName); err == nil && ck.Value != "" {
		id, err := a.staffIdentity(ctx, ck.Value)
		if err != nil {
			return nil, err
		}
		id.viaCookie = true
		return id, nil
	}
	return nil, errorf(codeUnauth, "authentication required: a staff session or a buyer token")
}

// originAllowed reports whether a browser origin may talk to shop's buyer endpoints. Requests without
// an Origin header are not from a browser page and are allowed; a page on this server always is.
func originAllowed(shop *agent.Shop, origin, host string) bool {
	if origin == "" {
		return true
	}
	if u, err := url.Parse(origin); err == nil && u.Host == host {
		return true
	}
	for _, o := range shop.AllowedOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// sameOrigin reports whether a cookie-authenticated request comes from a page of this server: the
// CSRF check, on top of the SameSite=Strict cookie.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return r.Header.Get("Sec-Fetch-Site") != "cross-site"
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

// authenticated is gin middleware that puts the identity in the context or fails with 401/403.
func (a *auth) authenticated() gin.HandlerFunc {
	return func(c *gin.Context) {
		id, err := a.identify(c.Request)
		if err != nil {
			fail(c, err)
			return
		}
		if id.viaCookie && c.Request.Method != http.MethodGet && !sameOrigin(c.Request) {
			fail(c, errorf(codeForbidden, "cross-site request refused"))
			return
		}
		if id.buyer != nil && !originAllowed(id.shop, c.GetHeader("Origin"), c.Request.Host) {
			fail(c, errorf(codeOrigin, "origin not allowed for this shop"))
			return
		}
		c.Set("identity", id)
		c.Next()
	}
}

func who(c *gin.Context) *identity {
	return c.MustGet("identity").(*identity)
}
