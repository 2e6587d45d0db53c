;; Run when the image is built, so that the classes Clojure loads for the usual
;; parts of a script (namespaces, core functions, strings, sets, I/O, records)
;; are in the class-data archive; it is not part of any program.
(ns cds-sample
  (:require [clojure.string :as str]
            [clojure.set :as set]
            [clojure.java.io :as io]))

(defrecord Point [x y])

(defn total [points] (reduce + (map #(+ (:x %) (:y %)) points)))

(let [lines (line-seq (io/reader *in*))
      points [(->Point 1 2) (->Point 3 4)]
      words (str/split "b a c a" #" ")]
  (println (total points) (count lines) (frequencies words) (set/union #{1} #{2})
           (str/join "," (sort words)) (format "%.2f" 3.14159) (into {} [[:k 1]])))
