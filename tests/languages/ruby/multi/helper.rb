module Helper
  def self.add(a, b) = a + b
  def self.twice(x) = 2 * x
end
