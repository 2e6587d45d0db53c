-module(main).
-export([main/0]).

main() -> io:format("sum=~b twice=~b~n", [2 + 3, helper:twice(7)]).
