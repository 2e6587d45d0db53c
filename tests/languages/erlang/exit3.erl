-module(main).
-export([main/0]).

main() ->
    io:format(standard_error, "failing on purpose~n", []),
    halt(3).
