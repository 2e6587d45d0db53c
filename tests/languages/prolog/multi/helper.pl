:- module(helper, [add/3, twice/2]).

add(A, B, C) :- C is A + B.
twice(X, Y) :- Y is 2 * X.
