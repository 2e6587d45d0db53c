(ns main
  (:require [util.text :as text]))

(doseq [w ["multi" "file"]]
  (println (text/shout w)))
(println (reduce + (map #(* % %) (range 1 5))))
