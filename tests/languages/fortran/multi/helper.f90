module helper
  implicit none
contains
  integer function twice(n)
    integer, intent(in) :: n
    twice = 2 * n
  end function twice
end module helper
