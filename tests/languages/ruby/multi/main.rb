require_relative "helper"
puts "sum=#{Helper.add(2, 3)} twice=#{Helper.twice(7)}"
