// Package arch holds the test that keeps the code's shape: the one-way
// imports between parts, the size of each type, a doc on every package.
package arch
