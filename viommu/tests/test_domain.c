#include "viommu_test.h"
Test(viommu_domain, builds)
{
    viommu *v = test_device(0, 1);
    cr_assert_not_null(v);
    viommu_free(v);
}
