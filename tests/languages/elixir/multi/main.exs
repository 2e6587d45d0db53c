Code.require_file("greeter.exs", __DIR__)

IO.puts(Greeter.greet("Elixir"))
IO.puts("sum=#{Enum.sum(1..10)}")
