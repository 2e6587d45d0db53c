import Helper (twice)

main :: IO ()
main = putStrLn ("twice=" ++ show (twice 21))
