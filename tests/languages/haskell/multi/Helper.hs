module Helper (twice) where

twice :: Int -> Int
twice n = 2 * n
