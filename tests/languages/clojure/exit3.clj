(binding [*out* *err*]
  (println "failing on purpose"))
(System/exit 3)
