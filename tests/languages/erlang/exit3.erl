-module(main).
-export([main/0]).

main() -> erlang:halt(3).
