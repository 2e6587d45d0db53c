(require '[clojure.java.io :as io])

(io/copy System/in System/out)
(.flush System/out)
