Code.require_file("helper.exs", __DIR__)
IO.puts("sum=#{2 + 3} twice=#{Helper.twice(7)}")
