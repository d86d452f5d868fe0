// Package auth implements password hashing, JWT issuance and verification,
// and login throttling.
//
// Tokens follow the layout of djangorestframework-simplejwt (HS256 with
// token_type, exp, iat, jti and user_id claims) so that clients written
// against the previous backend keep working unchanged.
package auth
